package vmgpio

import (
	"os"
	"os/exec"
	"testing"
)

// TestVM boots the VM from the host (DOORBRIDGE_TEST_VM=1): it runs
// scripts/vm-gpio.sh, which builds what it needs and runs this package's
// tests inside. The first run downloads and builds for a few minutes.
func TestVM(t *testing.T) {
	if inVM() || os.Getenv("DOORBRIDGE_TEST_VM") != "1" {
		t.Skip("DOORBRIDGE_TEST_VM=1 boots the qemu VM (scripts/vm-gpio.sh)")
	}
	out, err := exec.Command("../../scripts/vm-gpio.sh").CombinedOutput()
	t.Logf("scripts/vm-gpio.sh:\n%s", out)
	if err != nil {
		t.Fatalf("scripts/vm-gpio.sh: %v", err)
	}
}
