// Command doorbridge drives the lock relays of doors and puts every door into
// Home Assistant over MQTT.
//
//	doorbridge run [-c FILE]            run the bridge
//	doorbridge check-config [-c FILE]   validate a config and show what each door does
//	doorbridge alarm on|off|reset [-c FILE]   publish to the alarm topic (drills, commissioning)
//	doorbridge discovery [-c FILE]      print the Home Assistant discovery payloads
//	doorbridge test-door [-c FILE] DOOR walk an installer through one door (relay, inputs)
//	doorbridge hash-code                read a code on stdin, print its bcrypt hash
//	doorbridge hash-password            read a broker password on stdin, print its bcrypt hash
//	doorbridge healthcheck [-c FILE]    exit 0 when the running bridge is ready
//	doorbridge events [-c FILE] [--since 1h]   print the audit file as a table
//	doorbridge version
//
// FILE defaults to $DOORBRIDGE_CONFIG, then /etc/doorbridge/config.yaml.

// The runtime would look at the CPU affinity and the cgroup's CPU limit
// every second to adjust GOMAXPROCS (Go 1.25): a read of a cgroup file and
// a system call each second of an otherwise idle bridge, for a limit that
// does not change under it. GOMAXPROCS is still set from both at start.
//
//go:debug updatemaxprocs=0
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// version and commit are stamped at build time: -ldflags "-X
// main.version=v1.2.3 -X main.commit=<git revision>" (scripts/build-release.sh,
// the Dockerfile). A plain go build leaves commit empty and the Go
// toolchain's VCS stamp says it instead.
var (
	version = "dev"
	commit  = ""
)

// buildCommit is the commit the binary was built from: the stamped one, or
// vcs.revision from the build info ("-dirty" when vcs.modified), or
// "unknown".
func buildCommit() string {
	if commit != "" {
		return commit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", ""
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	return rev + dirty
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage: doorbridge <command> [flags]

commands:
  run [-c FILE]                   run the bridge
  check-config [-c FILE]          validate a config; print what each door does
  alarm on|off|reset [-c FILE]    publish the fire alarm (drills, commissioning)
  discovery [-c FILE]             print the Home Assistant discovery payloads
  test-door [-c FILE] DOOR        commissioning: pulse one door's relay, show its inputs live
  hash-code                       read a door code on stdin, print its bcrypt hash
  hash-password                   read a broker password on stdin, print its bcrypt hash
  healthcheck [-c FILE]           exit 0 when the running bridge is ready (/readyz)
  events [-c FILE] [--since 1h]   print the audit file (audit.file) as a table
  version                         print the version and the commit it was built from

FILE defaults to $DOORBRIDGE_CONFIG, then /etc/doorbridge/config.yaml.
`

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "check-config":
		return cmdCheckConfig(args[1:], stdout, stderr)
	case "alarm":
		return cmdAlarm(args[1:], stdout, stderr)
	case "hash-code":
		return cmdHashCode(args[1:], stdin, stdout, stderr)
	case "hash-password":
		return cmdHashPassword(args[1:], stdin, stdout, stderr)
	case "discovery":
		return cmdDiscovery(args[1:], stdout, stderr)
	case "test-door":
		return cmdTestDoor(args[1:], stdin, stdout, stderr)
	case "events":
		return cmdEvents(args[1:], stdout, stderr)
	case "healthcheck":
		return cmdHealthcheck(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		return cmdVersion(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "doorbridge: unknown command %q\n\n%s", args[0], usage)
	return 2
}
