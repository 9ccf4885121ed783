package fifo

import (
	"sync"
	"testing"
)

func TestBoundAndOrder(t *testing.T) {
	c := New[int, string](shards*2, func(k int) uint64 { return 0 }) // one shard of 2
	c.Put(1, "a")
	c.Put(2, "b")
	c.Put(1, "a2") // an update keeps its place
	c.Put(3, "c")  // evicts 1, the oldest insertion
	if _, ok := c.Get(1); ok {
		t.Fatal("the oldest insertion was not evicted")
	}
	if v, ok := c.Get(2); !ok || v != "b" {
		t.Fatalf("2: %q %v", v, ok)
	}
	if v, _ := c.Get(3); v != "c" {
		t.Fatalf("3: %q", v)
	}
	c.Delete(2)
	if c.Len() != 1 {
		t.Fatalf("Len %d, want 1", c.Len())
	}
	spread := New[int, int](shards*4, func(k int) uint64 { return uint64(k) })
	for i := range 1000 {
		spread.Put(i, i)
	}
	if n := spread.Len(); n != shards*4 {
		t.Fatalf("%d entries, bound %d", n, shards*4)
	}
}

func TestDeleteIf(t *testing.T) {
	c := New[int, string](shards, func(k int) uint64 { return 0 })
	c.Put(1, "old")
	c.Put(1, "new")                                          // put since the caller judged "old"
	c.DeleteIf(1, func(v string) bool { return v == "old" }) // keeps "new"
	if v, ok := c.Get(1); !ok || v != "new" {
		t.Fatalf("a newer value was dropped: %q %v", v, ok)
	}
	c.DeleteIf(1, func(v string) bool { return v == "new" })
	if _, ok := c.Get(1); ok {
		t.Fatal("DeleteIf kept the value it was to drop")
	}
	c.DeleteIf(2, func(string) bool { t.Fatal("asked about an absent key"); return true })
}

// TestConcurrent: readers never lock, so under the race detector they run
// against writers filling, updating, evicting and deleting; a read sees a
// whole value or none, and the bound and the count still hold.
func TestConcurrent(t *testing.T) {
	type val struct{ k, gen int }
	c := New[int, *val](shards*8, func(k int) uint64 { return uint64(k) * 0x9e3779b97f4a7c15 })
	done := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if v, ok := c.Get(i % 500); ok && v.k != i%500 {
					t.Errorf("key %d has the value of %d", i%500, v.k)
					return
				}
			}
		}()
	}
	var writers sync.WaitGroup
	for w := range 2 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 20000 {
				k := (i*7 + w) % 500
				switch i % 3 {
				case 0, 1:
					c.Put(k, &val{k, i})
				default:
					c.DeleteIf(k, func(v *val) bool { return v.gen%2 == 0 })
				}
			}
		}()
	}
	writers.Wait()
	close(done)
	readers.Wait()
	n := 0
	for k := range 500 {
		if _, ok := c.Get(k); ok {
			n++
		}
	}
	if n != c.Len() || n > shards*8 {
		t.Fatalf("%d keys found, Len %d, bound %d", n, c.Len(), shards*8)
	}
}
