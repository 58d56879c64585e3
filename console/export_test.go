package console

import "time"

// SetStreamLife sets how long c's event streams live, for tests.
func SetStreamLife(c *Console, d time.Duration) {
	c.streams.mu.Lock()
	defer c.streams.mu.Unlock()
	c.streams.lifetime = d
}
