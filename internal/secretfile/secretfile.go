// Package secretfile reads a secret, such as a password, from a file: the
// one way doorbridge does it (mqtt.password_file, the embedded broker's
// users, NUT power sources, the CLI's -password-file).
package secretfile

import (
	"fmt"
	"os"
	"strings"
)

// Read returns the file's content without its trailing newline. A file that
// other accounts could read, or its group write, is refused (CheckMode), and
// so is an empty one: a password that is empty by mistake would log in as
// nobody, or as anybody.
func Read(path string) (string, error) {
	if err := CheckMode(path); err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// CheckMode refuses a secret file that other accounts could read or its
// group could write. A file that cannot be stat'ed passes: reading it says
// what is wrong.
func CheckMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if perm := fi.Mode().Perm(); perm&0o027 != 0 {
		who := "readable by every account on this machine"
		switch {
		case perm&0o004 == 0 && perm&0o002 != 0:
			who = "writable by every account on this machine"
		case perm&0o007 == 0:
			who = "writable by its group"
		}
		return fmt.Errorf("%s is %s (mode %04o); make it 0600, owned by the service's user (or 0640 with its group): chmod 0600 %s", path, who, perm, path)
	}
	return nil
}
