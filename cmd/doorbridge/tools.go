package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/doorbridge/doorbridge/bridge"
	"github.com/doorbridge/doorbridge/config"
	"github.com/doorbridge/doorbridge/discovery"
)

// codePattern is what Home Assistant's keypad accepts (the lock's code_format).
var codePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\d{4,8}$`) })

// cmdHashCode reads a code from stdin and prints its bcrypt hash for code_hash.
func cmdHashCode(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if code, done := noFlags("hash-code", args, stderr); done {
		return code
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		fmt.Fprintf(stderr, "doorbridge: hash-code: %v\n", err)
		return 1
	}
	code := strings.TrimRight(line, "\r\n")
	if !codePattern().MatchString(code) {
		fmt.Fprintln(stderr, "doorbridge: hash-code: a code is 4 to 8 digits (what Home Assistant's keypad sends)")
		return 1
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(code), bcrypt.DefaultCost)
	if err != nil {
		fmt.Fprintf(stderr, "doorbridge: hash-code: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, string(hash))
	return 0
}

// cmdHashPassword reads a password from stdin and prints its bcrypt hash,
// for embedded_broker.users[].password_hash.
func cmdHashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if code, done := noFlags("hash-password", args, stderr); done {
		return code
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		fmt.Fprintf(stderr, "doorbridge: hash-password: %v\n", err)
		return 1
	}
	pw := strings.TrimRight(line, "\r\n")
	if len(pw) < 8 || len(pw) > 72 {
		fmt.Fprintln(stderr, "doorbridge: hash-password: a broker password is 8 to 72 bytes (bcrypt reads no further)")
		return 1
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		fmt.Fprintf(stderr, "doorbridge: hash-password: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, string(hash))
	return 0
}

// cmdDiscovery prints every Home Assistant discovery payload the config produces.
func cmdDiscovery(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("discovery", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := configFlag(fs)
	if code, done := parseFlags(fs, args, "discovery [-c FILE]"); done {
		return code
	}
	cfg, err := config.Load(config.Path(*file))
	if err != nil {
		fmt.Fprintf(stderr, "doorbridge: %v\n", err)
		return 1
	}
	for _, m := range discovery.Build(cfg, discovery.Info{Version: version, SupportURL: bridge.SupportURL}) {
		var pretty bytes.Buffer
		json.Indent(&pretty, m.Payload, "", "  ")
		fmt.Fprintf(stdout, "# %s (retained)\n%s\n\n", m.Topic, pretty.String())
	}
	return 0
}

// cmdHealthcheck asks the running bridge's /readyz: the container's
// HEALTHCHECK (the image has no curl).
func cmdHealthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := configFlag(fs)
	url := fs.String("url", "", "readiness URL (default: http://<http.listen>/readyz from the config)")
	if code, done := parseFlags(fs, args, "healthcheck [-c FILE | -url URL]"); done {
		return code
	}
	if *url == "" {
		cfg, err := config.Load(config.Path(*file))
		if err != nil {
			fmt.Fprintf(stderr, "doorbridge: %v\n", err)
			return 1
		}
		if cfg.HTTP.Listen == "" {
			fmt.Fprintln(stderr, "doorbridge: healthcheck: http.listen is empty; nothing to ask")
			return 1
		}
		addr := cfg.HTTP.Listen
		if strings.HasPrefix(addr, ":") || strings.HasPrefix(addr, "0.0.0.0:") {
			addr = "127.0.0.1:" + addr[strings.LastIndex(addr, ":")+1:]
		}
		*url = "http://" + addr + "/readyz"
		if cfg.HTTP.TLS() {
			*url = "https://" + addr + "/readyz"
		}
	}
	c := &http.Client{Timeout: 3 * time.Second}
	if strings.HasPrefix(*url, "https://") {
		// The bridge's own listener, asked on its own address: the
		// certificate names the host people use, not this one.
		c.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	}
	resp, err := c.Get(*url)
	if err != nil {
		fmt.Fprintf(stderr, "doorbridge: healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "doorbridge: healthcheck: %s: %s", resp.Status, body)
		return 1
	}
	fmt.Fprintf(stdout, "ready\n")
	return 0
}

// noFlags is parseFlags for a command that reads stdin and has no flags.
func noFlags(name string, args []string, stderr io.Writer) (int, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return parseFlags(fs, args, name+" < INPUT (no flags: reads one line on stdin)")
}

// cmdVersion prints the version and the commit it was built from.
func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if code, done := parseFlags(fs, args, "version (no flags: prints the version and the commit it was built from)"); done {
		return code
	}
	fmt.Fprintf(stdout, "doorbridge %s (commit %s)\n", version, buildCommit())
	return 0
}
