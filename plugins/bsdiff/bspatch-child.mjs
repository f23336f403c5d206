// The bspatch worker: applies OLD BSDIFF40 patch entries (repositories published before FERRYBD1,
// which ferry's own patcher applies without this worker) on request over the IPC channel, in a
// process of its own.
// bsdiff-node leaks descriptors and memory on a corrupt patch and can crash on hostile input; out
// here that costs only this process, which the parent replaces after any failure.
// bsdiff-node is loaded here, not by whoever starts the worker: on a device without it (not
// built: no compiler) each request is answered with noPatcher, and the parent reports ERR_NO_PATCHER.

// The listener is in place before the (asynchronous) load, so no request can arrive unheard.
const loading = import('bsdiff-node').then(
  (m) => ({ bsdiff: m.default }),
  (err) => ({ missing: `bsdiff-node is missing or not built on this machine (${String(err?.message ?? err).split('\n')[0]})` }),
);

process.on('message', async (req) => {
  const { bsdiff, missing } = await loading;
  if (missing) {
    process.send({ id: req.id, ok: false, noPatcher: true, error: missing });
    return;
  }
  try {
    await bsdiff.patch(req.oldFile, req.newFile, req.patchFile);
    process.send({ id: req.id, ok: true });
  } catch (err) {
    process.send({ id: req.id, ok: false, error: String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
