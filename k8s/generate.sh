#!/usr/bin/env bash
# Regenerates the plain manifests (k8s/base, k8s/overlays/minikube) from the Helm chart, so the
# two never drift apart:
#   k8s/generate.sh           rewrite them after a change to helm/iotpipe
#   k8s/generate.sh --check   exit 1, showing the difference, if they are not what the chart renders
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=${K8S_TOOLS_DIR:-$root/build/k8s-tools}
check=false
case ${1:-} in
--check) check=true ;;
"") ;;
*)
	echo "usage: $0 [--check]" >&2
	exit 2
	;;
esac

bash "$root/tools/k8s-tools.sh" --required
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

render() { "$tools/bin/helm" template iotpipe "$root/helm/iotpipe" --namespace iotpipe "$@"; }
render >"$tmp/base.yaml"
render -f "$root/helm/iotpipe/values-minikube.yaml" >"$tmp/minikube.yaml"

if $check; then
	node "$root/k8s/generate.mjs" generate "$tmp/base.yaml" "$tmp/minikube.yaml" "$tmp/k8s" >/dev/null
	status=0
	for d in base overlays/minikube; do
		diff -ru "$root/k8s/$d" "$tmp/k8s/$d" >&2 || status=1
	done
	if [ "$status" -ne 0 ]; then
		echo "k8s/ is out of step with helm/iotpipe: run k8s/generate.sh" >&2
		exit 1
	fi
	echo "k8s/ is in step with helm/iotpipe"
else
	node "$root/k8s/generate.mjs" generate "$tmp/base.yaml" "$tmp/minikube.yaml" "$root/k8s"
fi
