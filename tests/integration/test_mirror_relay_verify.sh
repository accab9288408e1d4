#!/usr/bin/env bash
# Verifier shared by the mirror-relay tests, and its own test.
#
# Sourced (by test_mirror_relay*.sh) it defines:
#   relay_dump BROKERS OUT TOPIC...   every record of the topics as kcat -J lines
#   relay_verify [options] SRC_DUMP TGT_DUMP
#       compares what the source held with what the target holds and prints one summary line:
#       source=N expected=N target=N relayed=N missing=N duplicates=N unexpected=N
#       mismatched=N misplaced=N disordered=N
#     --alias NAME          the relay's --source-alias (default local)
#     --map SRC:DST,...     source topic -> target topic (default: same names)
#     --skip-foreign        records whose origin names another cluster must not be relayed
#     --max-duplicates N    allowed duplicates (default 0)
#     --same-partition      every record must be in its source partition number on the target
#   It exits 0 only when nothing is missing, unexpected, mismatched, misplaced or out of order
#   and the duplicates are within the limit.
#
# A source record is identified by its topic and value, so test data must keep values unique
# per topic (the verifier refuses data that does not). On the target each record must carry the
# key, value, timestamp and headers of its source record, its headers followed by the origin
# header the relay adds (ALIAS/TOPIC/PARTITION/OFFSET) when the source had none or a malformed
# one, with "local" origins rewritten to the alias, other origins kept in place. Per source
# partition and key, first occurrences on the target must follow source offset order.
#
# Run directly, it checks that the verifier notices each kind of fault in crafted dumps.

relay_dump() {
	local brokers=$1 out=$2 t
	shift 2
	: >"$out"
	for t in "$@"; do
		timeout 60 kcat -C -b "$brokers" -t "$t" -o beginning -e -J -q -m 10 \
			-X enable.partition.eof=true >>"$out" || return 1
	done
}

# relay_text_lines TOPIC FROM TO: kcat -K '\t' input with values unique per topic; every 10th
# record has no key (null), every 97th an empty one; 997 keys, so each key has many records.
relay_text_lines() {
	awk -v t="$1" -v a="$2" -v b="$3" 'BEGIN {
		for (i = a; i <= b; i++) {
			v = t "-v" i " reading=" (i * 7 % 1000) / 10 " unit=C padding-padding-padding"
			if (i % 10 == 0) print v
			else if (i % 97 == 0) print "\t" v
			else print "k" (i % 997) "\t" v
		}
	}'
}

# relay_reading_lines FROM TO: Reading records as JSON lines for iot-cat -P -T Reading -k site.
relay_reading_lines() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		for (i = a; i <= b; i++)
			printf "{\"site\":\"site%d\",\"device\":\"dev%d\",\"sensor\":\"s1\",\"metric\":\"temperature\",\"unit\":\"C\",\"value\":%d.25,\"ts\":%.0f,\"received_at\":%.0f,\"location\":null,\"device_type\":null,\"tags\":{\"seq\":\"%d\"}}\n", i % 50, i % 7, i, 1700000000000 + i, 1700000000100 + i, i
	}'
}

# relay_kcat_produce BROKERS TOPIC [kcat args...]: stdin lines (key TAB value) to TOPIC.
relay_kcat_produce() {
	local b=$1 t=$2
	shift 2
	timeout 60 kcat -P -b "$b" -t "$t" -K '\t' -X message.timeout.ms=30000 -m 10 "$@"
}

# relay_start_clusters TOPIC...: kafka-mock clusters "edge" and "central", each with the topics
# (8 partitions); sets E and C to their bootstrap lists.
relay_start_clusters() {
	local parts=() t
	for t in "$@"; do parts+=(--topic "$t:8"); done
	start_kafka_mock --name edge "${parts[@]}" || return 1
	start_kafka_mock --name central "${parts[@]}" || return 1
	E=$BOOTSTRAP_EDGE
	C=$BOOTSTRAP_CENTRAL
}

# relay_lag_zero URL PARTITIONS: the relay at URL reports lag 0 on PARTITIONS partitions.
relay_lag_zero() {
	local v
	v=$(metric "$1" iotpipe_relay_lag_records) && [ "$v" = 0 ] &&
		[ "$(curl -fsS "$1" | grep -c '^iotpipe_relay_lag_records{')" = "$2" ]
}

# relay_relayed_over URL N: the relay at URL had more than N records acknowledged.
relay_relayed_over() {
	local n
	n=$(metric "$1" iotpipe_relay_records_total) && [ "${n%.*}" -gt "$2" ]
}

relay_verify() {
	perl -e "$RELAY_VERIFY_PL" -- "$@"
}

# relay_verified NAME [relay_verify args]: relay_verify as a harness check named NAME, its
# summary line shown either way.
relay_verified() {
	local name=$1 out="$HARNESS_DIR/verify.out" rc=0
	shift
	relay_verify "$@" >"$out" 2>&1 || rc=$?
	if [ $rc -eq 0 ]; then
		pass "$name"
	else
		fail "$name"
		sed '$d; s/^/#   /' "$out"
	fi
	harness_diag "$(tail -n 1 "$out")"
	return $rc
}

# shellcheck disable=SC2016 # perl source
RELAY_VERIFY_PL='
use strict;
use warnings;
use JSON::PP;

my %o = (alias => "local", map => "", skip => 0, maxdup => 0, samepart => 0);
while (@ARGV && $ARGV[0] =~ /^--/) {
	my $a = shift @ARGV;
	if ($a eq "--alias") { $o{alias} = shift @ARGV }
	elsif ($a eq "--map") { $o{map} = shift @ARGV }
	elsif ($a eq "--skip-foreign") { $o{skip} = 1 }
	elsif ($a eq "--max-duplicates") { $o{maxdup} = shift @ARGV }
	elsif ($a eq "--same-partition") { $o{samepart} = 1 }
	elsif ($a eq "--") { last }
	else { die "relay_verify: unknown option $a\n" }
}
@ARGV == 2 or die "relay_verify: usage: [options] SRC_DUMP TGT_DUMP\n";
my ($srcf, $tgtf) = @ARGV;
my %fwd = map { split /:/, $_, 2 } grep { length } split /,/, $o{map};
my %back = reverse %fwd;
my $json = JSON::PP->new->allow_nonref;
my $shown = 0;
sub problem { print STDERR "relay_verify: @_\n" if $shown++ < 8 }

# kcat -J lines. Strings stay in their JSON-escaped form: both dumps come from kcat, so equal
# bytes give equal text. A regular expression reads the fixed layout fast; anything else goes
# through JSON::PP and is escaped back.
my $S = qr/"(?:[^"\\]|\\.)*"/;
sub raw { my ($v) = @_; return defined $v ? $json->encode($v) : "null" }
sub load {
	my ($f) = @_;
	open my $fh, "<:raw", $f or die "relay_verify: $f: $!\n";
	my @r;
	while (my $l = <$fh>) {
		next unless $l =~ /^\{/;
		if ($l =~ /^\{"topic":"([^"]*)","partition":(-?\d+),"offset":(-?\d+),"tstype":"\w+","ts":(-?\d+),"broker":-?\d+,(?:"headers":\[((?:$S|null|,)*)\],)?"key":(null|$S),"payload":(null|$S)\}\s*$/) {
			my ($t, $p, $off, $ts, $hs, $k, $v) = ($1, $2, $3, $4, $5, $6, $7);
			my @h = defined $hs ? ($hs =~ /($S|null)/g) : ();
			push @r, { topic => $t, partition => $p, offset => $off, ts => $ts,
				   headers => \@h, key => $k, payload => $v };
			next;
		}
		my $d = $json->decode($l);
		push @r, { topic => $d->{topic}, partition => $d->{partition}, offset => $d->{offset},
			   ts => $d->{ts}, headers => [map { raw($_) } @{$d->{headers} || []}],
			   key => raw($d->{key}), payload => raw($d->{payload}) };
	}
	return [sort { $a->{topic} cmp $b->{topic} || $a->{partition} <=> $b->{partition}
		       || $a->{offset} <=> $b->{offset} } @r];
}

sub headers_of { my ($r) = @_; return $r->{headers} || [] }
sub jstr { return "\"$_[0]\"" } # plain ASCII as a JSON string
sub last_header {
	my ($h, $name) = @_;
	my $v;
	for (my $i = 0; $i < @$h; $i += 2) { $v = $h->[$i + 1] if $h->[$i] eq jstr($name) }
	return defined $v && $v =~ /^"(.*)"$/s ? $1 : undef;
}
sub without {
	my ($h, $name) = @_;
	my @o;
	for (my $i = 0; $i < @$h; $i += 2) { push @o, $h->[$i], $h->[$i + 1] unless $h->[$i] eq jstr($name) }
	return \@o;
}
sub key_text { return $_[0] }

# What the relay must make of a source record: [skip, expected headers].
sub expected {
	my ($r) = @_;
	my $h = headers_of($r);
	my $v = last_header($h, "iotpipe-origin");
	my $own = jstr("$o{alias}/$r->{topic}/$r->{partition}/$r->{offset}");
	my $name = jstr("iotpipe-origin");
	return [0, [@$h, $name, $own]] unless defined $v;
	my ($c, $rest) = $v =~ m{^([^/]{1,127})/([^/]{1,255}/-?\d+/-?\d+)$};
	return [0, [@{without($h, "iotpipe-origin")}, $name, $own]] unless defined $c;
	return [0, $h] if $c eq $o{alias} || $c eq "-";
	return [0, [@{without($h, "iotpipe-origin")}, $name, jstr("$o{alias}/$rest")]]
		if $c eq "local";
	return [$o{skip}, $h];
}

my $src = load($srcf);
my $tgt = load($tgtf);
my (%byid, $expected);
for my $r (@$src) {
	my $id = $r->{topic} . "\0" . $r->{payload};
	die "relay_verify: source value not unique in $r->{topic}: test data must differ\n"
		if exists $byid{$id};
	my $e = expected($r);
	$byid{$id} = { r => $r, skip => $e->[0], hdrs => $e->[1], seen => 0 };
	$expected++ unless $e->[0];
}
$expected //= 0;
my ($dups, $unexp, $mism, $misp, $disorder, $relayed) = (0) x 6;
my %last; # source topic/partition/key -> newest source offset among first occurrences
for my $t (@$tgt) {
	my $st = $back{$t->{topic}} // $t->{topic};
	my $s = $byid{$st . "\0" . $t->{payload}};
	if (!$s || $s->{skip}) {
		$unexp++;
		problem("unexpected record $t->{topic} [$t->{partition}] @ $t->{offset}"
			. ($s ? " (should have been skipped)" : ""));
		next;
	}
	my $r = $s->{r};
	if ($s->{seen}++) { $dups++; next }
	$relayed++;
	my $want_t = $fwd{$r->{topic}} // $r->{topic};
	if ($t->{topic} ne $want_t) {
		$misp++;
		problem("$r->{topic} [$r->{partition}] @ $r->{offset} went to $t->{topic}");
	}
	if ($o{samepart} && $t->{partition} != $r->{partition}) {
		$misp++;
		problem("$r->{topic} [$r->{partition}] @ $r->{offset} went to partition $t->{partition}");
	}
	my @diff;
	push @diff, "key" if key_text($t->{key}) ne key_text($r->{key});
	push @diff, "timestamp $t->{ts} != $r->{ts}" if $t->{ts} != $r->{ts};
	my ($th, $eh) = (join(",", @{headers_of($t)}), join(",", @{$s->{hdrs}}));
	push @diff, "headers [$th] != [$eh]" if $th ne $eh;
	if (@diff) {
		$mism++;
		problem("$r->{topic} [$r->{partition}] @ $r->{offset}: " . join("; ", @diff));
	}
	my $k = "$r->{topic}/$r->{partition}/" . key_text($r->{key});
	if (exists $last{$k} && $last{$k} > $r->{offset}) {
		$disorder++;
		problem("$r->{topic} [$r->{partition}] @ $r->{offset} arrived after offset $last{$k} of the same key");
	}
	$last{$k} = $r->{offset} if !exists $last{$k} || $last{$k} < $r->{offset};
}
my $missing = $expected - $relayed;
if ($missing) {
	for my $s (values %byid) {
		next if $s->{skip} || $s->{seen};
		problem("missing $s->{r}{topic} [$s->{r}{partition}] @ $s->{r}{offset}");
	}
}
printf "source=%d expected=%d target=%d relayed=%d missing=%d duplicates=%d unexpected=%d "
	. "mismatched=%d misplaced=%d disordered=%d\n", scalar(@$src), $expected, scalar(@$tgt),
	$relayed, $missing, $dups, $unexp, $mism, $misp, $disorder;
exit(($missing || $unexp || $mism || $misp || $disorder || $dups > $o{maxdup}) ? 1 : 0);
'

# ---- self-test ------------------------------------------------------------------------------
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	. "$(dirname "$0")/../lib/harness.sh"
	harness_init mirror_relay_verify
	require perl
	d=$HARNESS_DIR
	rec() { # topic partition offset ts key(-:null) payload headers-json
		local key='null'
		[ "$5" = - ] || key="\"$5\""
		printf '{"topic":"%s","partition":%s,"offset":%s,"tstype":"create","ts":%s,"key":%s,"payload":"%s","headers":%s}\n' \
			"$1" "$2" "$3" "$4" "$key" "$6" "$7"
	}
	{
		rec t 0 0 100 k1 v0 '[]'
		rec t 0 1 101 k1 v1 '["h","1"]'
		rec t 0 2 102 - v2 '["iotpipe-origin","local/raw/3/9"]'
		rec t 1 0 103 k2 v3 '["iotpipe-origin","e1/t/1/0","x","y"]'
		rec t 1 1 104 k2 v4 '["iotpipe-origin","other/t/5/5"]'
		rec t 1 2 105 k2 v5 '["iotpipe-origin","garbage"]'
	} >"$d/src"
	good() {
		rec e1.t 0 0 100 k1 v0 '["iotpipe-origin","e1/t/0/0"]'
		rec e1.t 0 1 101 k1 v1 '["h","1","iotpipe-origin","e1/t/0/1"]'
		rec e1.t 0 2 102 - v2 '["iotpipe-origin","e1/raw/3/9"]'
		rec e1.t 1 0 103 k2 v3 '["iotpipe-origin","e1/t/1/0","x","y"]'
		rec e1.t 1 1 105 k2 v5 '["iotpipe-origin","e1/t/1/2"]'
	}
	good >"$d/good"
	v() { relay_verify --alias e1 --map t:e1.t --skip-foreign --same-partition "$@"; }
	fails() { ! v "$@"; }
	check "a faithful relay passes" v "$d/src" "$d/good"
	v "$d/src" "$d/good" >"$d/summary" 2>&1
	check "the summary counts the skipped foreign record as not expected" \
		grep -q 'source=6 expected=5 target=5 relayed=5 missing=0 duplicates=0' "$d/summary"
	good | sed 1d >"$d/lost"
	check "a lost record is found" fails "$d/src" "$d/lost"
	{ good; rec e1.t 0 3 100 k1 v0 '["iotpipe-origin","e1/t/0/0"]'; } >"$d/dup"
	check "a duplicate fails with --max-duplicates 0" fails "$d/src" "$d/dup"
	check "a duplicate passes with --max-duplicates 1" v --max-duplicates 1 "$d/src" "$d/dup"
	good | sed 's/"ts":101/"ts":999/' >"$d/ts"
	check "a changed timestamp is found" fails "$d/src" "$d/ts"
	good | sed 's/"key":"k1","payload":"v1"/"key":"","payload":"v1"/' >"$d/key"
	check "an empty key instead of the key is found" fails "$d/src" "$d/key"
	good | sed 's/"key":null/"key":""/' >"$d/nullkey"
	check "an empty key instead of a null key is found" fails "$d/src" "$d/nullkey"
	good | sed 's/\["h","1",/["h","2",/' >"$d/hdr"
	check "a changed header is found" fails "$d/src" "$d/hdr"
	good | sed 's#e1/raw/3/9#local/raw/3/9#' >"$d/local"
	check "an origin left at local is found" fails "$d/src" "$d/local"
	good | sed 's#"iotpipe-origin","e1/t/0/0"#"iotpipe-origin","e1/t/0/7"#' >"$d/origin"
	check "a wrong origin position is found" fails "$d/src" "$d/origin"
	{ good; rec e1.t 1 3 104 k2 v4 '["iotpipe-origin","other/t/5/5"]'; } >"$d/loop"
	check "a foreign record relayed despite loop prevention is found" fails "$d/src" "$d/loop"
	no_skip_fails() { ! relay_verify --alias e1 --map t:e1.t "$@"; }
	check "without loop prevention the foreign record is required" \
		no_skip_fails "$d/src" "$d/good"
	{ good; rec e1.t 1 3 1 k9 stray '[]'; } >"$d/stray"
	check "a record the source never had is found" fails "$d/src" "$d/stray"
	good | sed 's/"topic":"e1.t","partition":1,"offset":0/"topic":"e1.t","partition":0,"offset":9/' >"$d/part"
	check "a record in another partition is found" fails "$d/src" "$d/part"
	{
		rec e1.t 0 0 101 k1 v1 '["h","1","iotpipe-origin","e1/t/0/1"]'
		rec e1.t 0 1 100 k1 v0 '["iotpipe-origin","e1/t/0/0"]'
		good | sed -n '3,$p'
	} >"$d/order"
	check "records of one key out of order are found" fails "$d/src" "$d/order"
	{ cat "$d/src"; rec t 0 3 1 k1 v0 '[]'; } >"$d/srcdup"
	check "source data with repeated values is refused" fails "$d/srcdup" "$d/good"
	harness_finish
fi
