// `ferry/plugins/usb`: the USB / filesystem-drop transport (bundles and repository folders on
// mount points) and the watcher that says when something worth checking lands on one.

export { createUsbSource, parseUsbSpec, type UsbSource, type UsbSourceOptions, type UsbProblem, type UsbHooks } from './source.ts';
export { watchMounts, type MountEvent, type WatchOptions } from './watcher.ts';
