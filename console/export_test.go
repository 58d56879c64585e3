package console

import "time"

// SetStreamLife sets how long c's event streams live, for tests.
func SetStreamLife(c *Console, d time.Duration) {
	c.streams.mu.Lock()
	defer c.streams.mu.Unlock()
	c.streams.lifetime = d
}

// StreamsOpened is how many event streams c has opened.
func StreamsOpened(c *Console) int {
	c.streams.mu.Lock()
	defer c.streams.mu.Unlock()
	return c.streams.opened
}
