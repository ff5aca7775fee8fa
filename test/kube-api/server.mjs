#!/usr/bin/env node
// Kubernetes API test server for jobsched's end-to-end tests and benchmarks.
//
//   node server.mjs --certs DIR --token-file FILE [--port N] [--control-port N] [--log-file FILE]
//
// Serves the batch/v1 Jobs and core/v1 pods API over HTTPS on 127.0.0.1
// (certificates from make-certs.sh) and a plain-HTTP control API on
// 127.0.0.1 for the test harness.  Prints one JSON line
// {"port":N,"control_port":M,"pid":P} once both listen, and runs until
// SIGTERM or SIGINT.

import { readFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ServerState } from "./state.mjs";
import { createApiHandler } from "./api.mjs";
import { createControlHandler } from "./control.mjs";

const HOST = "127.0.0.1";
const USAGE = "usage: node server.mjs --certs DIR --token-file FILE [--port N] [--control-port N] [--log-file FILE]";

function fail(msg) {
	process.stderr.write(`kube-api: ${msg}\n${USAGE}\n`);
	process.exit(2);
}

function parseCli() {
	let values;
	try {
		({ values } = parseArgs({
			options: {
				certs: { type: "string" },
				"token-file": { type: "string" },
				port: { type: "string", default: "0" },
				"control-port": { type: "string", default: "0" },
				"log-file": { type: "string" },
				help: { type: "boolean", short: "h" },
			},
		}));
	} catch (err) {
		fail(err.message);
	}
	if (values.help) {
		process.stdout.write(`${USAGE}\n`);
		process.exit(0);
	}
	if (!values.certs) fail("--certs is required");
	if (!values["token-file"]) fail("--token-file is required");
	const port = (name) => {
		const n = Number(values[name]);
		if (!Number.isInteger(n) || n < 0 || n > 65535) fail(`--${name} must be a port number (0 = any free port)`);
		return n;
	};
	return { certs: values.certs, tokenFile: values["token-file"], port: port("port"), controlPort: port("control-port"), logFile: values["log-file"] ?? null };
}

function listen(server, port) {
	return new Promise((resolve, reject) => {
		server.once("error", reject);
		server.listen(port, HOST, () => resolve(server.address().port));
	});
}

async function main() {
	const opts = parseCli();
	let tls;
	let token;
	try {
		tls = {
			key: readFileSync(join(opts.certs, "server.key")),
			cert: readFileSync(join(opts.certs, "server.crt")),
			ca: readFileSync(join(opts.certs, "ca.crt")),
		};
		token = readFileSync(opts.tokenFile, "utf8").trim();
	} catch (err) {
		fail(err.message);
	}
	if (token === "") process.stderr.write("kube-api: warning: the token file is empty; no bearer token is accepted until PUT /tokens\n");

	const state = new ServerState({ tokens: token ? [token] : [], logFile: opts.logFile });
	const api = createHttpsServer(
		{
			...tls,
			// Ask for a client certificate (optional mTLS); connections without one still work.
			requestCert: true,
			rejectUnauthorized: false,
		},
		createApiHandler(state),
	);
	// Long-lived keep-alive like kube-apiserver (Go's server has no short idle
	// timeout); no request timeout, since watches and hung requests stay open.
	api.keepAliveTimeout = 90_000;
	api.headersTimeout = 100_000;
	api.requestTimeout = 0;
	const control = createHttpServer(createControlHandler(state));

	let port;
	let controlPort;
	try {
		port = await listen(api, opts.port);
		controlPort = await listen(control, opts.controlPort);
	} catch (err) {
		fail(`cannot listen: ${err.message}`);
	}

	const shutdown = () => {
		state.stop();
		api.close();
		control.close();
		api.closeAllConnections();
		control.closeAllConnections();
		// Let the log file flush, but do not wait for stragglers.
		setTimeout(() => process.exit(0), 100);
	};
	process.once("SIGTERM", shutdown);
	process.once("SIGINT", shutdown);

	process.stdout.write(`${JSON.stringify({ port, control_port: controlPort, pid: process.pid })}\n`);
}

main();
