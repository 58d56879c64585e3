package main

import (
	"context"
	"io"
	"net/http"
	"time"
)

// openConsoleStream keeps the web console's event stream on addr open, as
// a page left open on a phone would, until the returned func is called:
// the bridge then builds and sends its view the whole time.
func openConsoleStream(addr string) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/console/api/stream", nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done }
}
