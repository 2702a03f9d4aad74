// SeaCell: one SEA cell on Kubernetes, the same objects as deploy/k8s/ (rendered by
// `cargo xtask render` from the topology model): a nats-server StatefulSet sharing one
// config, its client and headless Services, a PodDisruptionBudget, and the worker.
//
// The nats-server config is not restated here: it is read from deploy/k8s/nats.conf, the
// file the ConfigMap in deploy/k8s/configmap.yaml carries. Routes in it name three pods
// (nats-0..2.nats-headless); other replica counts need a re-render of that file.

import * as fs from "fs";
import * as path from "path";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

export interface SeaCellArgs {
    /** Namespace for every object (default: the provider's). */
    namespace?: pulumi.Input<string>;
    /** nats-server replicas; the rendered routes expect 3. */
    replicas?: number;
    /** Server image (default: the pinned upstream image the manifests use). */
    natsImage?: string;
    /** Worker image, built by apps/sea-mq-worker/Dockerfile. */
    workerImage?: string;
    /** Worker replicas (they share one consumer group). */
    workerReplicas?: number;
    /** Secret holding the worker's DATABASE_URL (key `DATABASE_URL`). */
    databaseSecret?: string;
    /** JetStream volume size per server. */
    storage?: string;
    /** Path of the rendered nats.conf (default: deploy/k8s/nats.conf next to this component). */
    natsConfPath?: string;
}

const NAME = "nats";
const HEADLESS = "nats-headless";
const PORTS = { client: 4222, cluster: 6222, monitor: 8222 };
const WORKER_PORT = 8080;

function labels(name: string): Record<string, string> {
    return { app: name, "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "sea-cell" };
}

function probe(pathAndQuery: string, initialDelaySeconds: number, periodSeconds: number, failureThreshold: number) {
    return {
        httpGet: { path: pathAndQuery, port: "monitor" },
        initialDelaySeconds,
        periodSeconds,
        timeoutSeconds: 5,
        failureThreshold,
    };
}

export class SeaCell extends pulumi.ComponentResource {
    public readonly statefulSet: k8s.apps.v1.StatefulSet;
    public readonly service: k8s.core.v1.Service;
    public readonly headless: k8s.core.v1.Service;
    public readonly worker: k8s.apps.v1.Deployment;
    /** NATS_SERVERS for clients inside the cluster: every pod through the headless Service. */
    public readonly natsServers: string;

    constructor(name: string, args: SeaCellArgs = {}, opts?: pulumi.ComponentResourceOptions) {
        super("sea:messaging:SeaCell", name, {}, opts);
        const parent = { parent: this };
        const replicas = args.replicas ?? 3;
        const namespace = args.namespace;
        const confPath = args.natsConfPath ?? path.join(__dirname, "..", "..", "k8s", "nats.conf");
        const natsConf = fs.readFileSync(confPath, "utf8");
        const natsLabels = labels(NAME);
        const selector = { "app.kubernetes.io/name": NAME };

        const config = new k8s.core.v1.ConfigMap(`${name}-nats-config`, {
            metadata: { name: "nats-config", namespace, labels: natsLabels },
            data: { "nats.conf": natsConf },
        }, parent);

        this.statefulSet = new k8s.apps.v1.StatefulSet(`${name}-nats`, {
            metadata: { name: NAME, namespace, labels: natsLabels },
            spec: {
                replicas,
                serviceName: HEADLESS,
                podManagementPolicy: "Parallel",
                selector: { matchLabels: selector },
                template: {
                    metadata: { labels: natsLabels },
                    spec: {
                        terminationGracePeriodSeconds: 60,
                        affinity: {
                            podAntiAffinity: {
                                requiredDuringSchedulingIgnoredDuringExecution: [{
                                    topologyKey: "kubernetes.io/hostname",
                                    labelSelector: { matchLabels: selector },
                                }],
                            },
                        },
                        containers: [{
                            name: "nats",
                            image: args.natsImage ?? "nats:2.15.1-alpine",
                            args: ["--config", "/etc/nats/nats.conf"],
                            env: [
                                { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
                                // Peers dial the pod by its stable DNS name, never its IP.
                                { name: "CLUSTER_ADVERTISE", value: `$(POD_NAME).${HEADLESS}:6222` },
                            ],
                            ports: Object.entries(PORTS).map(([portName, containerPort]) => ({ name: portName, containerPort })),
                            startupProbe: probe("/healthz?js-enabled-only=true", 10, 10, 90),
                            readinessProbe: probe("/healthz?js-server-only=true", 10, 10, 3),
                            livenessProbe: probe("/healthz?js-enabled-only=true", 10, 30, 3),
                            lifecycle: { preStop: { exec: { command: ["nats-server", "--signal", "ldm=1"] } } },
                            resources: { requests: { cpu: "250m", memory: "512Mi" } },
                            volumeMounts: [
                                { name: "config", mountPath: "/etc/nats" },
                                { name: "data", mountPath: "/data" },
                            ],
                        }],
                        volumes: [{ name: "config", configMap: { name: config.metadata.name } }],
                    },
                },
                volumeClaimTemplates: [{
                    metadata: { name: "data" },
                    spec: {
                        accessModes: ["ReadWriteOnce"],
                        resources: { requests: { storage: args.storage ?? "10Gi" } },
                    },
                }],
            },
        }, parent);

        this.service = new k8s.core.v1.Service(`${name}-nats-svc`, {
            metadata: { name: NAME, namespace, labels: natsLabels },
            spec: {
                selector,
                ports: [
                    { name: "client", port: PORTS.client, targetPort: "client" },
                    { name: "monitor", port: PORTS.monitor, targetPort: "monitor" },
                ],
            },
        }, parent);

        this.headless = new k8s.core.v1.Service(`${name}-nats-headless`, {
            metadata: { name: HEADLESS, namespace, labels: natsLabels },
            spec: {
                selector,
                clusterIP: "None",
                publishNotReadyAddresses: true,
                ports: [{ name: "cluster", port: PORTS.cluster, targetPort: "cluster" }],
            },
        }, parent);

        new k8s.policy.v1.PodDisruptionBudget(`${name}-nats-pdb`, {
            metadata: { name: NAME, namespace, labels: natsLabels },
            spec: { minAvailable: Math.floor(replicas / 2) + 1, selector: { matchLabels: selector } },
        }, parent);

        this.natsServers = Array.from({ length: replicas }, (_, i) => `nats://${NAME}-${i}.${HEADLESS}:${PORTS.client}`).join(",");
        const workerLabels = labels("sea-mq-worker");
        this.worker = new k8s.apps.v1.Deployment(`${name}-worker`, {
            metadata: { name: "sea-mq-worker", namespace, labels: workerLabels },
            spec: {
                replicas: args.workerReplicas ?? 2,
                selector: { matchLabels: { "app.kubernetes.io/name": "sea-mq-worker" } },
                template: {
                    metadata: { labels: workerLabels },
                    spec: {
                        terminationGracePeriodSeconds: 40,
                        containers: [{
                            name: "worker",
                            image: args.workerImage ?? "sea-mq-worker:dev",
                            env: [
                                { name: "NATS_SERVERS", value: this.natsServers },
                                { name: "HTTP_ADDR", value: `0.0.0.0:${WORKER_PORT}` },
                                { name: "CONSUMER_GROUP", value: "sea-mq-worker" },
                                {
                                    name: "DATABASE_URL",
                                    valueFrom: { secretKeyRef: { name: args.databaseSecret ?? "sea-mq-worker-db", key: "DATABASE_URL" } },
                                },
                            ],
                            ports: [{ name: "http", containerPort: WORKER_PORT }],
                            readinessProbe: { httpGet: { path: "/readyz", port: "http" }, periodSeconds: 5 },
                            livenessProbe: { httpGet: { path: "/healthz", port: "http" }, periodSeconds: 10, failureThreshold: 3 },
                            resources: { requests: { cpu: "100m", memory: "64Mi" } },
                        }],
                    },
                },
            },
        }, { parent: this, dependsOn: [this.statefulSet] });

        this.registerOutputs({ natsServers: this.natsServers });
    }
}
