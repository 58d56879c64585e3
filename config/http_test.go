package config_test

import (
	"testing"

	"github.com/doorbridge/doorbridge/config"
)

// A missing HTTPS certificate is reported at start, with its key.
func TestHTTPSCertificateChecked(t *testing.T) {
	cfg := config.Default()
	cfg.File = "door.yaml"
	cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile = "/nonexistent/cert.pem", "/nonexistent/key.pem"
	err := cfg.CheckFiles()
	want := "door.yaml: http.tls_cert_file: open /nonexistent/cert.pem: no such file or directory"
	if err == nil || err.Error() != want {
		t.Fatalf("CheckFiles = %v, want %s", err, want)
	}
}

func TestPublicConsoleURL(t *testing.T) {
	for _, tc := range []struct {
		h    config.HTTP
		want string
	}{
		{config.HTTP{Listen: "127.0.0.1:9180", Console: config.ConsoleOff}, ""},
		{config.HTTP{Listen: "127.0.0.1:9180", Console: config.ConsoleReadOnly}, "http://127.0.0.1:9180/"},
		{config.HTTP{Listen: "192.168.1.5:9180", Console: config.ConsoleOn, TLSCertFile: "c", TLSKeyFile: "k"}, "https://192.168.1.5:9180/"},
		{config.HTTP{Listen: ":9180", Console: config.ConsoleReadOnly}, ""},
		{config.HTTP{Listen: ":9180", Console: config.ConsoleReadOnly, ConsoleURL: "https://doors.lan/"}, "https://doors.lan/"},
	} {
		if got := tc.h.PublicConsoleURL(); got != tc.want {
			t.Errorf("%+v: PublicConsoleURL = %q, want %q", tc.h, got, tc.want)
		}
	}
}
