package console

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// Clients are counted by their full address: an IPv6 /64 is often a
// whole home LAN.
func TestClientKeyFullAddress(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		{"192.0.2.7:5555", "192.0.2.7"},
		{"[2001:db8:1:2:aaaa::1]:5555", "2001:db8:1:2:aaaa::1"},
		{"[2001:db8:1:2:bbbb:cccc:dddd:eeee]:80", "2001:db8:1:2:bbbb:cccc:dddd:eeee"},
		{"[::1]:9", "::1"},
	} {
		if got := clientKey(&http.Request{RemoteAddr: tc.remote}); got != tc.want {
			t.Errorf("clientKey(%s) = %q, want %q", tc.remote, got, tc.want)
		}
	}
}

// The bcrypt comparisons running at once are bounded over every client:
// with every slot taken, a login is turned away as busy instead of queued
// without end or compared.
func TestComparePasswordBounded(t *testing.T) {
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	for range cap(comparing) {
		comparing <- struct{}{}
	}
	err := comparePassword(context.Background(), string(h), "pw")
	for range cap(comparing) {
		<-comparing
	}
	if !errors.Is(err, errBusy) {
		t.Fatalf("compare with every slot taken = %v, want %v", err, errBusy)
	}
	if err := comparePassword(context.Background(), string(h), "pw"); err != nil {
		t.Fatalf("compare with the slots free = %v, want nil", err)
	}
}
