// Everything the API port and the control port share, and the reset that
// gives a test a clean cluster.

import { randomUUID } from "node:crypto";
import { Store, timestamp } from "./store.mjs";
import { WatchHub } from "./watch.mjs";
import { Lister } from "./lists.mjs";
import { Cluster } from "./cluster.mjs";
import { Faults } from "./faults.mjs";
import { TtlController } from "./ttl.mjs";
import { RequestLog } from "./requestlog.mjs";

export const DEFAULT_NAMESPACES = ["default", "jobsched-test"];
export const DEFAULT_USER = "system:serviceaccount:jobsched-test:jobsched";

export class ServerState {
	constructor({ tokens, logFile = null }) {
		this.hub = new WatchHub(() => this.store.currentRV);
		this.store = new Store((res, type, obj, prev) => {
			this.hub.publish(res, type, obj, prev);
			this.ttl.observe(res, type, obj);
		});
		this.lister = new Lister(this.store);
		this.cluster = new Cluster(this.store);
		this.ttl = new TtlController(this.store, this.cluster);
		this.faults = new Faults();
		this.log = new RequestLog({ file: logFile });
		this.auth = { tokens: new Set(tokens), forbidden: new Set(), user: DEFAULT_USER };
		this.latencyMs = 0;
		this.setNamespaces(DEFAULT_NAMESPACES);
	}

	/** Namespace objects keep their uid while they stay in the set. */
	setNamespaces(names) {
		const old = this.namespaces ?? new Map();
		this.namespaces = new Map();
		for (const name of names) {
			this.namespaces.set(
				name,
				old.get(name) ?? {
					metadata: {
						name,
						uid: randomUUID(),
						resourceVersion: String(this.store.nextRV()),
						creationTimestamp: timestamp(),
						labels: { "kubernetes.io/metadata.name": name },
					},
					spec: { finalizers: ["kubernetes"] },
					status: { phase: "Active" },
				},
			);
		}
	}

	setTokens({ tokens, forbidden, user }) {
		if (tokens != null) this.auth.tokens = new Set(tokens.map(String));
		if (forbidden != null) this.auth.forbidden = new Set(forbidden.map(String));
		if (user != null) this.auth.user = String(user);
	}

	/** A fresh cluster for the next test. Tokens are kept; everything else goes back to defaults. */
	reset() {
		this.faults.clear();
		this.ttl.reset();
		this.hub.reset();
		this.store.clear();
		this.hub.compact(); // RVs from before the reset are too old now
		this.lister.expireAll();
		this.log.clear();
		this.log.clearViolations();
		this.latencyMs = 0;
		this.namespaces = null;
		this.setNamespaces(DEFAULT_NAMESPACES);
	}

	stop() {
		this.faults.releaseHung();
		this.ttl.reset();
		this.hub.stop();
		this.log.close();
	}
}
