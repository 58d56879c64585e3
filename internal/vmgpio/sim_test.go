package vmgpio

import "os"

func inVM() bool { return os.Getenv("DOORBRIDGE_VMGPIO") == "1" }
