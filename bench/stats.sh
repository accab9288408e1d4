# Summaries of a space-separated list of measurements, for the bench scripts (source it).
highest() { tr ' ' '\n' <<<"$1" | grep . | sort -g | tail -n 1; }
lowest() { tr ' ' '\n' <<<"$1" | grep . | sort -g | head -n 1; }
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
