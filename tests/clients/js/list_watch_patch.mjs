// A short, realistic @kubernetes/client-node script that tests/api/test_api_client_node.py runs
// against a knet apiserver: `node list_watch_patch.mjs KUBECONFIG NAMESPACE`. It lists, watches
// (a raw Watch and an informer) and patches (JSON, merge, strategic merge, server-side apply),
// and prints one JSON line per step for the test to assert on. Any failure exits non-zero.
import * as k8s from '@kubernetes/client-node';

const [kubeconfig, ns] = process.argv.slice(2);
const kc = new k8s.KubeConfig();
kc.loadFromFile(kubeconfig);
const core = kc.makeApiClient(k8s.CoreV1Api);
const apps = kc.makeApiClient(k8s.AppsV1Api);
const out = (step, value) => console.log(JSON.stringify({ step, value }));
const withTimeout = (promise, ms, what) =>
    Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms))]);

// Watch: collect the events of ConfigMaps labelled app=demo until the DELETED one.
const watched = [];
let watchDone;
const watchFinished = new Promise((resolve) => (watchDone = resolve));
const watch = new k8s.Watch(kc);
const watchReq = await watch.watch(
    `/api/v1/namespaces/${ns}/configmaps`,
    { labelSelector: 'app=demo' },
    (type, obj) => {
        watched.push([type, obj.metadata.name, obj.data ?? {}]);
        if (type === 'DELETED') watchDone();
    },
    (err) => { if (err && err.name !== 'AbortError') { console.error('watch ended:', err); process.exit(3); } },
);

// An informer (list, then watch from the list's resourceVersion), as controllers use one.
const informer = k8s.makeInformer(kc, `/api/v1/namespaces/${ns}/configmaps`,
    () => core.listNamespacedConfigMap({ namespace: ns }));
const informed = [];
informer.on('add', (obj) => informed.push(['add', obj.metadata.name]));
informer.on('update', (obj) => informed.push(['update', obj.metadata.name, obj.data ?? {}]));
informer.on('delete', (obj) => informed.push(['delete', obj.metadata.name]));
let stopping = false;
informer.on('error', (err) => { if (!stopping) { console.error('informer error:', err); process.exit(4); } });
await informer.start();

await core.createNamespacedConfigMap({
    namespace: ns, body: { metadata: { name: 'settings', labels: { app: 'demo' } }, data: { color: 'blue' } },
});
await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'other' }, data: {} } });

const list = await core.listNamespacedConfigMap({ namespace: ns, labelSelector: 'app=demo' });
out('list', { kind: list.kind, names: list.items.map((cm) => cm.metadata.name), rv: Boolean(list.metadata.resourceVersion) });

// The generated PATCH methods send application/json-patch+json unless told otherwise.
let cm = await core.patchNamespacedConfigMap({
    name: 'settings', namespace: ns, body: [{ op: 'add', path: '/data/size', value: 'L' }],
});
out('json-patch', cm.data);
cm = await core.patchNamespacedConfigMap(
    { name: 'settings', namespace: ns, body: { data: { color: 'green' } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
out('merge-patch', cm.data);

await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
        metadata: { name: 'web' },
        spec: {
            replicas: 1, selector: { matchLabels: { app: 'web' } },
            template: {
                metadata: { labels: { app: 'web' } },
                spec: { containers: [{ name: 'web', image: 'nginx', env: [{ name: 'A', value: '1' }] }] },
            },
        },
    },
});
// Strategic merge: the env list merges by name instead of being replaced.
const dep = await apps.patchNamespacedDeployment(
    { name: 'web', namespace: ns, body: { spec: { template: { spec: { containers: [{ name: 'web', env: [{ name: 'B', value: '2' }] }] } } } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch));
out('strategic-merge-patch', dep.spec.template.spec.containers[0].env);

// Server-side apply of the scale through the generic object API, with a field manager. The
// create above named no manager, so its replicas belong to the User-Agent's first word
// (node-fetch): changing them is a conflict until the apply forces it.
const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
const scale = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: ns }, spec: { replicas: 3 } };
let conflict = null;
try {
    await objects.patch(scale, undefined, undefined, 'js-script', false, k8s.PatchStrategy.ServerSideApply);
} catch (err) {
    conflict = { code: err.code, message: JSON.parse(err.body).message };
}
const applied = await objects.patch(scale, undefined, undefined, 'js-script', true, k8s.PatchStrategy.ServerSideApply);
out('server-side-apply', {
    conflict,
    replicas: applied.spec.replicas,
    managers: applied.metadata.managedFields.map((f) => [f.manager, f.operation]),
});

await core.deleteNamespacedConfigMap({ name: 'settings', namespace: ns });
await withTimeout(watchFinished, 15000, 'the watch to see DELETED');
out('watch', watched);
const wanted = (e) => e[0] === 'delete' && e[1] === 'settings';
await withTimeout((async () => { while (!informed.some(wanted)) await new Promise((r) => setTimeout(r, 50)); })(),
    15000, 'the informer to see the delete');
out('informer', { events: informed, cached: informer.list(ns).map((o) => o.metadata.name).sort() });

stopping = true;
watchReq.abort();
await informer.stop();
process.exit(0);
