// Validates Kubernetes manifests offline, against the Kubernetes OpenAPI schemas.
//
//   node tests/k8s/validate.mjs [--strict] [--policy] FILE...      (FILE "-" is stdin)
//
// Every object is checked by the JSON-schema validator that kubernetes-models generates from the
// Kubernetes OpenAPI document (and KEDA's and prometheus-operator's CRD schemas): types, required
// fields, enums, formats. Those schemas, like the API server's, accept unknown fields, so
// --strict also type-checks every object against the same models' TypeScript interfaces, whose
// excess-property check rejects any field the API does not define (a misspelt "readinessprobe"
// would otherwise be dropped silently by the server). --policy asserts the project's rules on
// every workload: security context, probes, resources, and selectors and scale targets that
// point at something in the same set of manifests.
// Exit status: 0 all valid, 1 some object failed, 2 usage or setup error.
import { createRequire } from "node:module";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const toolsDir = process.env.K8S_TOOLS_DIR || path.join(root, "build/k8s-tools");
const modulesDir = path.join(toolsDir, "validate/node_modules");

function usage(msg) {
	process.stderr.write(`validate: ${msg}\nusage: validate.mjs [--strict] [--policy] FILE...\n`);
	process.exit(2);
}

if (!existsSync(path.join(modulesDir, "kubernetes-models"))) {
	usage(`the schema models are not installed in ${modulesDir} (run tools/k8s-tools.sh)`);
}
const requireTools = createRequire(path.join(toolsDir, "validate/package.json"));
const YAML = requireTools("yaml");

// apiVersion -> [package directory, path inside it]. Only the groups our manifests may use; an
// object of any other group is an error rather than silently unchecked.
function modelLocation(apiVersion, kind) {
	const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
	if (group === "keda.sh") return ["@kubernetes-models/keda", `keda.sh/${version}/${kind}`];
	if (group === "monitoring.coreos.com")
		return ["@kubernetes-models/prometheus-operator", `monitoring.coreos.com/${version}/${kind}`];
	return ["kubernetes-models", group ? `${group}/${version}/${kind}` : `${version}/${kind}`];
}

/** Parses multi-document YAML; returns [{source, index, doc}] without empty documents. */
export function loadManifests(text, source) {
	const out = [];
	const docs = YAML.parseAllDocuments(text);
	docs.forEach((d, index) => {
		if (d.errors.length) throw new Error(`${source}: document ${index + 1}: ${d.errors[0].message}`);
		const doc = d.toJS();
		if (doc === null || doc === undefined) return;
		if (typeof doc !== "object" || Array.isArray(doc))
			throw new Error(`${source}: document ${index + 1} is not an object`);
		if (doc.kind === "List" && Array.isArray(doc.items)) {
			doc.items.forEach((item) => out.push({ source, index, doc: item }));
		} else {
			out.push({ source, index, doc });
		}
	});
	return out;
}

const id = (o) => `${o.source}: ${o.doc.kind || "?"}/${o.doc.metadata?.name || "?"}`;

async function schemaErrors(objects) {
	const errors = [];
	const classes = new Map();
	for (const o of objects) {
		const { apiVersion, kind } = o.doc;
		if (typeof apiVersion !== "string" || typeof kind !== "string") {
			errors.push(`${id(o)}: apiVersion and kind are required`);
			continue;
		}
		const [pkg, rel] = modelLocation(apiVersion, kind);
		const file = path.join(modulesDir, pkg, `${rel}.js`);
		if (!existsSync(file)) {
			errors.push(`${id(o)}: no schema for ${apiVersion} ${kind}`);
			continue;
		}
		if (!classes.has(file)) {
			const mod = await import(pathToFileURL(file).href);
			classes.set(file, mod[kind]);
		}
		o.model = [pkg, rel];
		try {
			new (classes.get(file))(o.doc).validate();
		} catch (e) {
			errors.push(`${id(o)}: ${e.message}`);
		}
	}
	return errors;
}

// One TypeScript program for all objects: `const o3: IDeployment = {...}` per object. The
// compiler's excess-property check reports fields the API does not have.
function strictErrors(objects) {
	const ts = requireTools("typescript");
	const typed = objects.filter((o) => o.model);
	if (!typed.length) return [];
	const imports = new Map();
	const lines = [];
	const owner = []; // line number (0-based) -> object
	for (const o of typed) {
		const spec = `${o.model[0]}/${o.model[1]}`;
		if (!imports.has(spec)) imports.set(spec, `T${imports.size}`);
	}
	for (const [spec, alias] of imports) {
		const kind = spec.split("/").pop();
		lines.push(`import type { I${kind} as ${alias} } from ${JSON.stringify(spec)};`);
	}
	typed.forEach((o, n) => {
		const alias = imports.get(`${o.model[0]}/${o.model[1]}`);
		const body = JSON.stringify(o.doc, null, 1).split("\n");
		body[0] = `export const o${n}: ${alias} = ${body[0]}`;
		body[body.length - 1] += ";";
		for (const l of body) {
			owner[lines.length] = o;
			lines.push(l);
		}
	});
	const dir = mkdtempSync(path.join(toolsDir, "validate", ".strict-"));
	try {
		const file = path.join(dir, "objects.ts");
		writeFileSync(file, lines.join("\n") + "\n");
		const program = ts.createProgram([file], {
			noEmit: true,
			strict: false, // null is a valid "unset" in manifests
			skipLibCheck: true,
			types: [],
			module: ts.ModuleKind.NodeNext,
			moduleResolution: ts.ModuleResolutionKind.NodeNext,
			target: ts.ScriptTarget.ES2022,
		});
		const diags = ts.getPreEmitDiagnostics(program);
		return diags.map((d) => {
			const text = ts.flattenDiagnosticMessageText(d.messageText, " ");
			if (!d.file || path.resolve(d.file.fileName) !== path.resolve(file))
				return `typescript: ${text}`;
			const { line } = d.file.getLineAndCharacterOfPosition(d.start);
			const o = owner[line];
			// Name the JSON path of the offending field from the line's key, for the reader.
			const key = (lines[line].match(/^\s*"([^"]+)"/) || [])[1];
			return `${o ? id(o) : "?"}: unknown or mistyped field${key ? ` "${key}"` : ""}: ${text}`;
		});
	} finally {
		rmSync(dir, { recursive: true, force: true });
	}
}

// --- policy -----------------------------------------------------------------------------------

const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"]);
const LONG_RUNNING = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod"]);

function podSpecOf(doc) {
	if (doc.kind === "Pod") return doc.spec;
	if (doc.kind === "CronJob") return doc.spec?.jobTemplate?.spec?.template?.spec;
	return doc.spec?.template?.spec;
}
function podAnnotationsOf(doc) {
	if (doc.kind === "Pod") return doc.metadata?.annotations || {};
	if (doc.kind === "CronJob") return doc.spec?.jobTemplate?.spec?.template?.metadata?.annotations || {};
	return doc.spec?.template?.metadata?.annotations || {};
}
function podLabelsOf(doc) {
	if (doc.kind === "Pod") return doc.metadata?.labels || {};
	if (doc.kind === "CronJob") return doc.spec?.jobTemplate?.spec?.template?.metadata?.labels || {};
	return doc.spec?.template?.metadata?.labels || {};
}

const UNITS = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };
function quantity(q) {
	const m = String(q).match(/^([0-9.]+)([a-zA-Z]*)$/);
	if (!m || (m[2] && !(m[2] in UNITS))) return NaN;
	return Number(m[1]) * (m[2] ? UNITS[m[2]] : 1);
}

const matches = (selector, labels) =>
	Object.entries(selector || {}).every(([k, v]) => labels[k] === v) && Object.keys(selector || {}).length > 0;

function policyErrors(objects) {
	const errors = [];
	const pods = objects.filter((o) => WORKLOADS.has(o.doc.kind));
	for (const o of pods) {
		const doc = o.doc;
		const spec = podSpecOf(doc);
		const where = id(o);
		if (!spec) {
			errors.push(`${where}: no pod template`);
			continue;
		}
		const psc = spec.securityContext || {};
		if (psc.runAsNonRoot !== true) errors.push(`${where}: pod securityContext.runAsNonRoot is not true`);
		if (psc.seccompProfile?.type !== "RuntimeDefault")
			errors.push(`${where}: pod securityContext.seccompProfile.type is not RuntimeDefault`);
		if (spec.hostNetwork || spec.hostPID || spec.hostIPC) errors.push(`${where}: uses a host namespace`);
		if (doc.kind !== "Pod" && doc.kind !== "CronJob" && doc.spec?.selector?.matchLabels &&
			!matches(doc.spec.selector.matchLabels, podLabelsOf(doc)))
			errors.push(`${where}: spec.selector does not match the pod template's labels`);
		const containers = [...(spec.initContainers || []), ...(spec.containers || [])];
		if (!containers.length) errors.push(`${where}: no containers`);
		for (const c of containers) {
			const cw = `${where}: container ${c.name}`;
			const sc = c.securityContext || {};
			if (sc.runAsNonRoot !== true) errors.push(`${cw}: securityContext.runAsNonRoot is not true`);
			if (sc.runAsUser !== 10001) errors.push(`${cw}: securityContext.runAsUser is not 10001`);
			if (sc.readOnlyRootFilesystem !== true) errors.push(`${cw}: securityContext.readOnlyRootFilesystem is not true`);
			if (sc.allowPrivilegeEscalation !== false)
				errors.push(`${cw}: securityContext.allowPrivilegeEscalation is not false`);
			if (sc.privileged === true) errors.push(`${cw}: privileged`);
			if (!(sc.capabilities?.drop || []).includes("ALL")) errors.push(`${cw}: securityContext.capabilities.drop lacks ALL`);
			if ((sc.capabilities?.add || []).length) errors.push(`${cw}: adds capabilities ${sc.capabilities.add}`);
			if ((sc.seccompProfile?.type || psc.seccompProfile?.type) !== "RuntimeDefault")
				errors.push(`${cw}: seccompProfile is not RuntimeDefault`);
			for (const kind of ["requests", "limits"]) {
				for (const r of ["cpu", "memory"]) {
					const v = c.resources?.[kind]?.[r];
					if (v === undefined) errors.push(`${cw}: resources.${kind}.${r} is not set`);
					else if (Number.isNaN(quantity(v))) errors.push(`${cw}: resources.${kind}.${r} '${v}' is not a quantity`);
				}
				const req = c.resources?.requests || {};
				const lim = c.resources?.limits || {};
				for (const r of ["cpu", "memory"])
					if (req[r] !== undefined && lim[r] !== undefined && quantity(req[r]) > quantity(lim[r]))
						errors.push(`${cw}: resources.requests.${r} exceeds its limit`);
			}
			if (/:latest$/.test(c.image || "") || !/:[^/]+$/.test(c.image || ""))
				errors.push(`${cw}: image '${c.image}' has no pinned tag`);
			const isInit = (spec.initContainers || []).includes(c);
			// A pod may go without probes only when it says why, serves nothing, and (checked
			// below) no Service sends it traffic.
			const noProbes = podAnnotationsOf(doc)["iotpipe/no-probes"];
			if (noProbes && (c.ports || []).length) errors.push(`${cw}: iotpipe/no-probes, but it has ports`);
			if (LONG_RUNNING.has(doc.kind) && !isInit && !noProbes) {
				for (const p of ["livenessProbe", "readinessProbe"])
					if (!c[p]) errors.push(`${cw}: no ${p}`);
			}
			// The programs' own contract: /healthz and /readyz on the named metrics port.
			if (LONG_RUNNING.has(doc.kind) && !noProbes && podLabelsOf(doc)["app.kubernetes.io/name"] === "iotpipe") {
				const port = (c.ports || []).find((p) => p.name === "metrics");
				if (!port) errors.push(`${cw}: no container port named metrics`);
				if (c.livenessProbe?.httpGet?.path !== "/healthz" || c.livenessProbe?.httpGet?.port !== "metrics")
					errors.push(`${cw}: livenessProbe is not GET /healthz on the metrics port`);
				if (c.readinessProbe?.httpGet?.path !== "/readyz" || c.readinessProbe?.httpGet?.port !== "metrics")
					errors.push(`${cw}: readinessProbe is not GET /readyz on the metrics port`);
				const envPort = (c.env || []).find((e) => e.name === "IOTPIPE_METRICS_PORT");
				if (!envPort || Number(envPort.value) !== port?.containerPort)
					errors.push(`${cw}: IOTPIPE_METRICS_PORT does not match the metrics containerPort`);
			}
		}
	}
	// Selectors and references must land on something in the same manifests.
	const longRunning = pods.filter((o) => LONG_RUNNING.has(o.doc.kind));
	const podLabels = longRunning.map((o) => podLabelsOf(o.doc));
	for (const o of objects) {
		const d = o.doc;
		if (d.kind === "Service" && d.spec?.selector && !podLabels.some((l) => matches(d.spec.selector, l)))
			errors.push(`${id(o)}: selector matches no pod template`);
		if (d.kind === "Service" && d.spec?.selector)
			for (const w of longRunning)
				if (podAnnotationsOf(w.doc)["iotpipe/no-probes"] && matches(d.spec.selector, podLabelsOf(w.doc)))
					errors.push(`${id(o)}: selects ${w.doc.kind}/${w.doc.metadata.name}, which has no probes`);
		if (d.kind === "PodDisruptionBudget" && !podLabels.some((l) => matches(d.spec?.selector?.matchLabels, l)))
			errors.push(`${id(o)}: selector matches no pod template`);
		if (d.kind === "HorizontalPodAutoscaler" || d.kind === "ScaledObject") {
			const ref = d.spec?.scaleTargetRef || {};
			const kind = ref.kind || "Deployment";
			if (!objects.some((t) => t.doc.kind === kind && t.doc.metadata?.name === ref.name))
				errors.push(`${id(o)}: scaleTargetRef ${kind}/${ref.name} is not among the manifests`);
		}
	}
	return errors;
}

// --- main -------------------------------------------------------------------------------------

async function main() {
	const args = process.argv.slice(2);
	const strict = args.includes("--strict");
	const policy = args.includes("--policy");
	const files = args.filter((a) => a === "-" || !a.startsWith("--"));
	for (const a of args) if (a.startsWith("--") && !["--strict", "--policy"].includes(a)) usage(`unknown option ${a}`);
	if (!files.length) usage("no input files");
	let objects = [];
	for (const f of files) {
		const text = f === "-" ? readFileSync(0, "utf8") : readFileSync(f, "utf8");
		objects = objects.concat(loadManifests(text, f === "-" ? "stdin" : f));
	}
	if (!objects.length) {
		process.stderr.write("validate: no objects in the input\n");
		process.exit(1);
	}
	const errors = await schemaErrors(objects);
	if (strict) errors.push(...strictErrors(objects));
	if (policy) {
		// Policy is per input file: each is one release's manifests.
		for (const f of new Set(objects.map((o) => o.source)))
			errors.push(...policyErrors(objects.filter((o) => o.source === f)));
	}
	if (errors.length) {
		for (const e of errors) process.stderr.write(`validate: ${e}\n`);
		process.stderr.write(`validate: ${errors.length} problem(s) in ${objects.length} objects\n`);
		process.exit(1);
	}
	const kinds = {};
	for (const o of objects) kinds[o.doc.kind] = (kinds[o.doc.kind] || 0) + 1;
	const summary = Object.entries(kinds)
		.sort()
		.map(([k, n]) => `${n} ${k}`)
		.join(", ");
	process.stdout.write(
		`validate: ${objects.length} objects valid${strict ? " (strict)" : ""}${policy ? " with policy" : ""}: ${summary}\n`,
	);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
	main().catch((e) => {
		process.stderr.write(`validate: ${e.message}\n`);
		process.exit(2);
	});
}
