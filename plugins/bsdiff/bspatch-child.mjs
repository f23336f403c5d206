// The bspatch worker: applies patches on request over the IPC channel, in a process of its own.
// bsdiff-node leaks descriptors and memory on a corrupt patch and can crash on hostile input; out
// here that costs only this process, which the parent replaces after any failure.
import bsdiff from 'bsdiff-node';

process.on('message', async (req) => {
  try {
    await bsdiff.patch(req.oldFile, req.newFile, req.patchFile);
    process.send({ id: req.id, ok: true });
  } catch (err) {
    process.send({ id: req.id, ok: false, error: String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
