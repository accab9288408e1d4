#!/usr/bin/env bash
# Checks the container image's runtime stage without a container engine:
#   1. the Dockerfile's RUNTIME_PACKAGES install on a bare Debian base (bookworm-slim's package set:
#      every Priority: required / Essential package and its dependencies), by simulating the
#      install with apt-get against a dpkg status that holds only that base;
#   2. every shared library that each binary in BINDIR loads (ldd) belongs, by dpkg -S, to a
#      package of that base or of the simulated install - so nothing links against a library that
#      only the build stage's -dev packages (or this machine) happen to have.
# Usage: tools/image-check.sh [--allow-sanitizers] [BINDIR]   (default: bin, the release build)
#   --allow-sanitizers  accept the AddressSanitizer/UBSan runtimes, to check the sanitized build
#                       (build/asan/bin) when no release build is at hand; the image never has them
# Exit status: 0 all good, 1 a check failed, 2 usage error.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dockerfile=${DOCKERFILE:-$root/Dockerfile}
allow_san=false
if [ "${1:-}" = "--allow-sanitizers" ]; then
	allow_san=true
	shift
fi
bindir=${1:-$root/bin}

die() {
	echo "image-check: $*" >&2
	exit 1
}
arg=${1:-}
if [ $# -gt 1 ] || [ "${arg#-}" != "$arg" ]; then
	echo "usage: $0 [--allow-sanitizers] [BINDIR]" >&2
	exit 2
fi
for tool in apt-get apt-cache dpkg dpkg-query ldd awk; do
	command -v "$tool" >/dev/null || die "'$tool' is required (a Debian system)"
done
[ -f "$dockerfile" ] || die "$dockerfile: not found"

# The list is one ARG line in the Dockerfile, so the image and this check cannot drift apart.
pkgs=$(sed -n 's/^ARG RUNTIME_PACKAGES="\([^"]*\)".*/\1/p' "$dockerfile")
[ -n "$pkgs" ] || die "$dockerfile: no 'ARG RUNTIME_PACKAGES=\"...\"' line"
suite=$(sed -n 's/^ARG DEBIAN_SUITE=\([a-z]*\).*/\1/p' "$dockerfile")
# shellcheck source=/dev/null
here=$(. /etc/os-release && echo "${VERSION_CODENAME:-unknown}")
[ "$suite" = "$here" ] ||
	die "the image is built on Debian '$suite' but this machine runs '$here': its package names and libraries would not tell anything about the image"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# apt needs its package lists to resolve names that are not installed here.
if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
	if [ "$(id -u)" -eq 0 ]; then
		apt-get update -qq >&2
	else
		die "no apt package lists: run 'sudo apt-get update' first"
	fi
fi

# 1. The base: required/essential packages installed here, closed under their dependencies.
required=$(dpkg-query -W -f='${Package} ${Priority} ${Essential} ${db:Status-Abbrev}\n' |
	awk '($2 == "required" || $3 == "yes") && $NF ~ /^ii/ { print $1 }' | sort -u)
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances $required 2>/dev/null |
	awk '!/^[ <]/ { print $1 }' | sort -u >"$tmp/base.list"
awk 'NR == FNR { want[$1] = 1; next }
	{ split($0, line, "\n"); name = line[1]; sub(/^Package: /, "", name)
	  if ((name in want) && $0 ~ /\nStatus: install ok installed/) printf "%s\n\n", $0 }' \
	"$tmp/base.list" RS="" /var/lib/dpkg/status >"$tmp/status"
echo "image-check: base: $(wc -l <"$tmp/base.list") packages (required/essential and their dependencies)"

# 2. What the runtime stage's apt-get install adds on top of that base.
# shellcheck disable=SC2086
if ! apt-get install --simulate --no-install-recommends -o Dir::State::status="$tmp/status" \
	$pkgs >"$tmp/sim.out" 2>&1; then
	cat "$tmp/sim.out" >&2
	die "RUNTIME_PACKAGES do not install on the base: $pkgs"
fi
awk '$1 == "Inst" { print $2 }' "$tmp/sim.out" | sort -u >"$tmp/added.list"
for p in $pkgs; do
	grep -qx "$p" "$tmp/added.list" "$tmp/base.list" ||
		die "package '$p' is neither in the base nor installed by the simulation"
done
echo "image-check: RUNTIME_PACKAGES install: $pkgs"
echo "image-check: the install adds $(wc -l <"$tmp/added.list") packages: $(tr '\n' ' ' <"$tmp/added.list")"
sort -u "$tmp/base.list" "$tmp/added.list" >"$tmp/image.list"

# 3. Every library every binary loads comes from a package of the image.
[ -d "$bindir" ] || die "$bindir: no such directory (build with 'make' first)"
nbin=0 fail=0
: >"$tmp/needs" # lines: binary library-path
for bin in "$bindir"/*; do
	if [ ! -f "$bin" ] || [ ! -x "$bin" ] || ! head -c 4 "$bin" | grep -q 'ELF'; then
		continue
	fi
	nbin=$((nbin + 1))
	if ! ldd "$bin" >"$tmp/ldd.out" 2>&1; then
		cat "$tmp/ldd.out" >&2
		die "ldd failed on $bin"
	fi
	while read -r line; do
		case $line in
		*"not found"*)
			echo "image-check: FAIL $(basename "$bin"): $line" >&2
			fail=1
			;;
		*"=> /"*)
			lib=${line#*=> }
			echo "$(basename "$bin") ${lib%% *}"
			;;
		/*) echo "$(basename "$bin") ${line%% *}" ;;
		*) ;; # linux-vdso and other objects the kernel provides
		esac
	done <"$tmp/ldd.out" >>"$tmp/needs"
done
[ "$nbin" -gt 0 ] || die "no ELF binaries in $bindir (build with 'make' first)"

# One dpkg -S for every spelling of every library: as ldd printed it, resolved, and /usr-merged.
declare -A owner=() used=()
while read -r lib; do
	case $lib in
	/usr/*) alt=${lib#/usr} ;;
	*) alt=/usr$lib ;;
	esac
	printf '%s\n%s\n%s\n' "$lib" "$(readlink -f "$lib")" "$alt"
done < <(awk '{ print $2 }' "$tmp/needs" | sort -u) | sort -u >"$tmp/paths"
# dpkg -S exits 1 when some spelling is unknown, which is expected for the alternatives.
xargs dpkg -S <"$tmp/paths" 2>/dev/null | sed -n 's/^\([^:,]*\)[^ ]* \(\/.*\)$/\1 \2/p' >"$tmp/owners" || true
while read -r pkg path; do owner[$path]=$pkg; done <"$tmp/owners"

while read -r bin lib; do
	case $lib in
	/usr/*) alt=${lib#/usr} ;;
	*) alt=/usr$lib ;;
	esac
	pkg=${owner[$lib]:-${owner[$(readlink -f "$lib")]:-${owner[$alt]:-}}}
	if $allow_san && [[ $pkg =~ ^lib(a|ub|l|t|hwa)san[0-9]+$ ]]; then
		continue
	elif [ -z "$pkg" ]; then
		echo "image-check: FAIL $bin: $lib belongs to no Debian package" >&2
		fail=1
	elif ! grep -qx "$pkg" "$tmp/image.list"; then
		echo "image-check: FAIL $bin: $lib comes from '$pkg', which the image does not install" >&2
		fail=1
	else
		used[$pkg]=1
	fi
done <"$tmp/needs"
[ "$fail" -eq 0 ] || die "$nbin binaries checked: some libraries would be missing in the image"
echo "image-check: $nbin binaries in $bindir load only libraries from the image's packages:" \
	"$(printf '%s\n' "${!used[@]}" | sort | tr '\n' ' ')"
for p in $pkgs; do
	case $p in
	lib*) [ -n "${used[$p]:-}" ] || echo "image-check: note: no binary in $bindir loads a library of '$p'" ;;
	esac
done
echo "image-check: OK"
