// Node-RED settings for the benchmark's watchdog flow (bench/bench_nodered.py): headless
// (no editor, no HTTP nodes, so no HTTP server), credentials in plain JSON beside the
// flow (flows_cred.json, written per run), and only warnings logged.
module.exports = {
    flowFile: "flows.json",
    credentialSecret: false,
    flowFilePretty: true,
    httpAdminRoot: false,
    httpNodeRoot: false,
    uiHost: "127.0.0.1",
    logging: {
        console: { level: "warn", metrics: false, audit: false },
    },
    diagnostics: { enabled: false },
    runtimeState: { enabled: false },
    telemetry: { enabled: false, updateNotification: false },
    editorTheme: { projects: { enabled: false } },
    exportGlobalContextKeys: false,
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
};
