/** The mergemem version; kmod/dkms.conf and the module carry the same. */
export const VERSION = "0.1.0";
