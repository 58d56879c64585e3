package vmgpio

import "testing"

func TestBoot(t *testing.T) {
	if !inVM() {
		t.Skip("runs inside the VM of scripts/vm-gpio.sh (DOORBRIDGE_VMGPIO=1)")
	}
}
