// What the chart must render for each of its values files, beyond schema validity:
//
//   node tests/k8s/expect.mjs default=FILE minikube=FILE edge=FILE central=FILE
//
// Rules for every rendering (consumer groups, scaling limits, wiring of secrets and topics), then
// the facts each values file exists for. Exit status 0 when all hold, 1 otherwise.
import { readFileSync } from "node:fs";
import { loadManifests } from "./validate.mjs";

const problems = [];
const expect = (ok, what) => {
	if (!ok) problems.push(what);
};

const env = (c, name) => (c.env || []).find((e) => e.name === name);
const envValue = (c, name) => env(c, name)?.value;

function programs(objs) {
	return objs
		.filter((o) => ["Deployment", "StatefulSet"].includes(o.kind) &&
			o.spec.template.metadata.labels["app.kubernetes.io/name"] === "iotpipe")
		.map((d) => ({ d, c: d.spec.template.spec.containers[0], component: d.metadata.labels["app.kubernetes.io/component"] }));
}

// kafka-topics.sh lines of the topics Job: topic -> partitions.
function topicPartitions(objs) {
	const job = objs.find((o) => o.kind === "Job" && o.metadata.name.endsWith("-topics"));
	const map = new Map();
	if (!job) return map;
	const script = job.spec.template.spec.containers[0].command.join("\n");
	for (const m of script.matchAll(/--topic "([^"]+)" --partitions (\d+)/g)) map.set(m[1], Number(m[2]));
	return map;
}

function common(name, objs) {
	const progs = programs(objs);
	expect(progs.length > 0, `${name}: no program Deployments`);
	const groups = new Map();
	for (const { d, c, component } of progs) {
		const where = `${name}: ${d.metadata.name}`;
		expect(c.command?.length === 1, `${where}: command is not one program`);
		const group = envValue(c, "IOTPIPE_GROUP");
		if (envValue(c, "IOTPIPE_IN")) {
			expect(Boolean(group), `${where}: consumes ${envValue(c, "IOTPIPE_IN")} without IOTPIPE_GROUP`);
			// Two Deployments in one group would split one topic's partitions between programs
			// that write different tables: each consumer Deployment needs a group of its own.
			if (group) {
				expect(!groups.has(group), `${where}: consumer group ${group} also used by ${groups.get(group)}`);
				groups.set(group, d.metadata.name);
			}
		}
		if (env(c, "IOTPIPE_IN") || env(c, "IOTPIPE_OUT"))
			expect(Boolean(envValue(c, "IOTPIPE_BROKERS")), `${where}: uses topics without IOTPIPE_BROKERS`);
		if (c.command[0] === "raw-saver")
			expect(Boolean(env(c, "IOTPIPE_DB")?.valueFrom?.secretKeyRef), `${where}: database URL not from a Secret`);
		if (envValue(c, "IOTPIPE_IN")) expect(envValue(c, "IOTPIPE_DEAD_LETTER"), `${where}: no dead-letter topic`);
		for (const e of c.env || [])
			expect(!/PASSWORD$/.test(e.name) || e.valueFrom, `${where}: ${e.name} is given in plain text`);
		const svc = objs.find((o) => o.kind === "Service" && o.metadata.name === d.metadata.name);
		if (c.ports) expect(svc?.spec.ports.some((p) => p.name === "metrics"), `${where}: no metrics Service`);
		if (d.kind === "StatefulSet") expect(svc && d.spec.serviceName === svc.metadata.name, `${where}: no governing Service`);
		expect(d.spec.template.metadata.labels["app.kubernetes.io/component"] === component, `${where}: labels`);
	}
	// Autoscaling: never two autoscalers on one Deployment, never more consumers than partitions.
	const partitions = topicPartitions(objs);
	const scaled = new Map();
	for (const o of objs.filter((x) => x.kind === "HorizontalPodAutoscaler" || x.kind === "ScaledObject")) {
		const target = o.spec.scaleTargetRef.name;
		expect(!scaled.has(target), `${name}: ${target} has two autoscalers`);
		scaled.set(target, o.kind);
		const d = progs.find((p) => p.d.metadata.name === target);
		if (!d) {
			expect(false, `${name}: ${o.metadata.name} scales ${target}, which is not a program Deployment`);
			continue;
		}
		expect(d.d.spec.replicas === undefined, `${name}: ${target} is autoscaled but sets replicas`);
		for (const t of o.spec.triggers || []) {
			if (t.type !== "kafka") continue;
			expect(t.metadata.consumerGroup === envValue(d.c, "IOTPIPE_GROUP"), `${name}: ${o.metadata.name}: lag of another group`);
			if (t.metadata.topic) {
				expect(t.metadata.topic === envValue(d.c, "IOTPIPE_IN"), `${name}: ${o.metadata.name}: lag of another topic`);
				const p = partitions.get(t.metadata.topic);
				if (p !== undefined)
					expect(o.spec.maxReplicaCount <= p, `${name}: ${o.metadata.name}: ${o.spec.maxReplicaCount} replicas > ${p} partitions`);
			}
		}
	}
	return progs;
}

const components = (progs) => progs.map((p) => p.component).sort();
const find = (objs, kind, suffix) => objs.find((o) => o.kind === kind && o.metadata.name.endsWith(suffix));
const prog = (progs, component) => progs.find((p) => p.component === component);

const checks = {
	default(objs, progs) {
		expect(
			JSON.stringify(components(progs)) ===
				JSON.stringify(
					["actuator", "aggregator", "cleaner", "forecaster", "mqtt-ingestor", "raw-saver-aggregates", "raw-saver-clean",
						"raw-saver-commands", "raw-saver-events", "raw-saver-forecasts", "raw-saver-raw", "raw-saver-rejected"],
				),
			`default: programs are ${components(progs)}`,
		);
		const savers = progs.filter((p) => p.c.command[0] === "raw-saver").map((p) => envValue(p.c, "IOTPIPE_IN"));
		expect(new Set(savers).size === 7, `default: raw-savers do not each read their own topic: ${savers}`);
		expect(find(objs, "Job", "-migrate")?.metadata.annotations["helm.sh/hook"] === "pre-install,pre-upgrade", "default: migrate hook");
		expect(find(objs, "Job", "-migrate")?.spec.template.spec.containers[0].args.includes("--migrate"), "default: migrate args");
		const topics = topicPartitions(objs);
		expect(topics.size === 10, `default: ${topics.size} topics created`);
		const script = find(objs, "Job", "-topics")?.spec.template.spec.containers[0].command.join("\n") || "";
		expect(/--topic "iot.forecaster-state"[^\n]*cleanup.policy=compact/.test(script), "default: state topic not compacted");
		const ingestor = prog(progs, "mqtt-ingestor");
		expect(envValue(ingestor.c, "IOTPIPE_MQTT") === "mqtt://mosquitto:1883", "default: MQTT URL");
		// Stable pod names are stable MQTT client ids, so persistent sessions survive restarts.
		expect(ingestor.d.kind === "StatefulSet", "default: the ingestor is not a StatefulSet");
		expect(envValue(prog(progs, "actuator").c, "IOTPIPE_OUT") === "iot.commands", "default: actuator output");
		expect(topicPartitions(objs).has("iot.deadletter"), "default: dead-letter topic not created");
		expect(envValue(prog(progs, "actuator").c, "IOTPIPE_RULES")?.startsWith("/etc/iotpipe/files/"), "default: rules path");
		expect(find(objs, "ConfigMap", "-actuator-files")?.data["actuator.rules"]?.includes("[rule "), "default: rules ConfigMap");
		expect(!objs.some((o) => ["ServiceMonitor", "ScaledObject", "NetworkPolicy", "HorizontalPodAutoscaler"].includes(o.kind)),
			"default: optional objects rendered");
	},
	minikube(objs, progs) {
		for (const c of ["kafka", "mosquitto", "postgres"])
			expect(find(objs, "Deployment", `-${c}`)?.spec.template.metadata.labels["app.kubernetes.io/name"] === c, `minikube: no dev ${c}`);
		const sim = prog(progs, "sensor-sim");
		expect(sim && !sim.c.ports && !env(sim.c, "IOTPIPE_METRICS_PORT"), "minikube: sensor-sim without metrics");
		for (const { d, c } of progs) {
			if (env(c, "IOTPIPE_BROKERS")) expect(envValue(c, "IOTPIPE_BROKERS") === "iotpipe-kafka:9092", `minikube: ${d.metadata.name} brokers`);
			expect(c.imagePullPolicy === "Never", `minikube: ${d.metadata.name} would pull the locally built image`);
		}
		expect(find(objs, "Job", "-migrate")?.metadata.annotations["helm.sh/hook"] === "post-install,post-upgrade", "minikube: migrate hook");
		const secret = find(objs, "Secret", "-postgres");
		expect(secret?.stringData?.url?.includes("@iotpipe-postgres:5432/"), "minikube: database URL");
		expect(find(objs, "ConfigMap", "-dashboard")?.data["iotpipe.json"]?.includes('"panels"'), "minikube: dashboard");
	},
	edge(objs, progs) {
		expect(!prog(progs, "forecaster") && prog(progs, "actuator") && prog(progs, "raw-saver-raw"), "edge: programs");
		const so = (c) => find(objs, "ScaledObject", `-${c}`);
		expect(so("mqtt-ingestor")?.spec.triggers[0].type === "cpu", "edge: ingestor scales on CPU");
		expect(so("cleaner")?.spec.triggers[0].type === "kafka", "edge: cleaner scales on lag");
		expect(so("aggregator")?.spec.triggers[0].metadata.topic === "iot.clean", "edge: aggregator lag topic");
		expect(find(objs, "ServiceMonitor", "")?.spec.endpoints[0].port === "metrics", "edge: ServiceMonitor");
		const ing = prog(progs, "mqtt-ingestor").c;
		expect(envValue(ing, "IOTPIPE_MQTT_PASSWORD_FILE") === "/etc/iotpipe/mqtt/password", "edge: MQTT password file");
		expect(ing.volumeMounts.some((m) => m.mountPath === "/etc/iotpipe/mqtt" && m.readOnly), "edge: password mount");
		expect(envValue(ing, "IOTPIPE_KAFKA_CONFIG") === "/etc/iotpipe/kafka/kafka.properties", "edge: Kafka secret file");
		expect(envValue(ing, "IOTPIPE_FILTER") === "factory/#,home/+/+/temperature", "edge: filters");
	},
	central(objs, progs) {
		expect(JSON.stringify(components(progs)) === JSON.stringify(
			["forecaster", "mirror-relay", "raw-saver-aggregates", "raw-saver-clean", "raw-saver-commands", "raw-saver-events",
				"raw-saver-forecasts", "raw-saver-rejected"]), `central: programs are ${components(progs)}`);
		const relay = prog(progs, "mirror-relay").c;
		expect(envValue(relay, "IOTPIPE_SOURCE_BROKERS") === "edge-north.example.internal:9093", "central: relay source");
		expect(envValue(relay, "IOTPIPE_TARGET_BROKERS") === envValue(prog(progs, "raw-saver-clean").c, "IOTPIPE_BROKERS"),
			"central: relay target is not this release's Kafka");
		expect(envValue(prog(progs, "raw-saver-clean").c, "IOTPIPE_IN") === "north.iot.clean", "central: renamed topic");
		expect(find(objs, "ScaledObject", "-mirror-relay")?.spec.triggers[0].metadata.bootstrapServers === "edge-north.example.internal:9093",
			"central: relay lag measured on the edge");
		expect(find(objs, "HorizontalPodAutoscaler", "-raw-saver-clean"), "central: HPA");
		expect(find(objs, "NetworkPolicy", ""), "central: NetworkPolicy");
	},
};

const args = process.argv.slice(2);
if (!args.length) {
	process.stderr.write("usage: expect.mjs NAME=FILE...\n");
	process.exit(2);
}
for (const arg of args) {
	const [name, file] = arg.split("=");
	const objs = loadManifests(readFileSync(file, "utf8"), file).map((o) => o.doc);
	const progs = common(name, objs);
	if (!checks[name]) {
		process.stderr.write(`expect: no expectations named ${name}\n`);
		process.exit(2);
	}
	checks[name](objs, progs);
}
if (problems.length) {
	for (const p of problems) process.stderr.write(`expect: ${p}\n`);
	process.exit(1);
}
process.stdout.write(`expect: ${args.length} renderings as expected\n`);
