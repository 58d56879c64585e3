// Package vmgpio holds the kernel GPIO test: it runs inside a qemu VM on
// Debian's kernel with gpio-sim (scripts/vm-gpio.sh builds and boots it), and
// skips everywhere else.
package vmgpio
