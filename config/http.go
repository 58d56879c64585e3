package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// http.console values.
const (
	ConsoleOff      = "off"
	ConsoleReadOnly = "read_only"
	ConsoleOn       = "on"
)

// ConsoleEnabled reports whether the web console is served.
func (h HTTP) ConsoleEnabled() bool { return h.Console == ConsoleReadOnly || h.Console == ConsoleOn }

// TLS reports whether the listener serves HTTPS.
func (h HTTP) TLS() bool { return h.TLSCertFile != "" }

// PublicConsoleURL is where the console is reached, for Home Assistant's
// configuration_url: "" when the console is off, or when listen is every
// address (:9180, 0.0.0.0:9180) and console_url does not say which one.
func (h HTTP) PublicConsoleURL() string {
	if !h.ConsoleEnabled() {
		return ""
	}
	if h.ConsoleURL != "" {
		return h.ConsoleURL
	}
	host, _, err := net.SplitHostPort(h.Listen)
	if err != nil || host == "" || host == "0.0.0.0" || host == "::" {
		return ""
	}
	scheme := "http"
	if h.TLS() {
		scheme = "https"
	}
	return scheme + "://" + h.Listen + "/"
}

func (c *Config) validateHTTP(v *validator) {
	h := c.HTTP
	if h.ConsoleURL != "" {
		u, err := url.Parse(h.ConsoleURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(h.ConsoleURL, " \t") {
			v.add("http.console_url", "%q is not an http:// or https:// URL with a host (e.g. https://doors.lan:9180/)", h.ConsoleURL)
		}
	}
	switch h.Console {
	case "", ConsoleOff, ConsoleReadOnly, ConsoleOn: // "": a Config built in code, off
	default:
		v.add("http.console", "%q is not a console mode (valid: off, read_only, on)", h.Console)
		return
	}
	if (h.TLSCertFile == "") != (h.TLSKeyFile == "") {
		if h.TLSCertFile == "" {
			v.add("http.tls_cert_file", "must be set with http.tls_key_file (HTTPS needs the certificate and its key)")
		} else {
			v.add("http.tls_key_file", "must be set with http.tls_cert_file (HTTPS needs the certificate and its key)")
		}
	}
	if h.ConsolePasswordHash != "" {
		if _, err := bcrypt.Cost([]byte(h.ConsolePasswordHash)); err != nil {
			v.add("http.console_password_hash", "is not a bcrypt hash (make one with: doorbridge hash-password)")
			return
		}
	}
	if h.Console != ConsoleOn {
		if h.ConsolePasswordHash != "" || h.ConsoleViewWithoutLogin {
			v.add("http.console", "is %q, but a console login is configured; set console: on to use it", h.Console)
		}
		return
	}
	switch {
	case h.Listen == "":
		v.add("http.console", "is on, but http.listen is empty: the console is served on http.listen")
	case h.ConsolePasswordHash == "":
		v.add("http.console_password_hash", "must be set with console: on (make one with: doorbridge hash-password); for viewing only, use console: read_only")
	case !h.TLS() && !isLoopbackListen(h.Listen):
		if _, _, err := net.SplitHostPort(h.Listen); err == nil {
			v.add("http.listen", "%q is not loopback: the console password would cross the network in clear text; set http.tls_cert_file and http.tls_key_file, or keep listen on 127.0.0.1", h.Listen)
		}
	}
}

// checkFiles loads the HTTPS certificate and key, for CheckFiles.
func (h HTTP) checkFiles(v *validator) {
	if h.TLSCertFile == "" || h.TLSKeyFile == "" {
		return
	}
	if _, key, err := loadKeyPair("http", h.TLSCertFile, h.TLSKeyFile); err != nil {
		v.add(strings.Replace(key, "http.", "http.tls_", 1), "%v", err)
	}
}

// ServerTLS is the listener's TLS configuration: nil without tls_cert_file.
func (h HTTP) ServerTLS() (*tls.Config, error) {
	if !h.TLS() {
		return nil, nil
	}
	cert, key, err := loadKeyPair("http", h.TLSCertFile, h.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Replace(key, "http.", "http.tls_", 1), err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
