// One fan's whole way through a TQ sale with go-redis:
// join the queue -> poll the position -> enter (a pass) -> hold a seat
// -> confirm it -> end the pass.
//
//	cd examples/go && go mod tidy && REDIS_HOST=127.0.0.1 REDIS_PORT=6379 go run .
//
// Needs a server with the tq module loaded. Every run uses a fresh, random
// event name. TQ commands go through rdb.Do; map replies come back as a map
// (RESP3, go-redis v9's default) or a flat field/value slice (RESP2).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		log.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// asMap turns a TQ map reply into field -> value, whatever the protocol.
func asMap(reply interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	switch r := reply.(type) {
	case map[interface{}]interface{}:
		for k, v := range r {
			out[fmt.Sprint(k)] = v
		}
	case []interface{}:
		for i := 0; i+1 < len(r); i += 2 {
			out[fmt.Sprint(r[i])] = r[i+1]
		}
	default:
		log.Fatalf("expected a map reply, got %T %v", reply, reply)
	}
	return out
}

// toInt reads an integer field (an int64 in either protocol).
func toInt(v interface{}) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case string:
		var i int64
		fmt.Sscan(n, &i)
		return i
	}
	log.Fatalf("expected an integer, got %T %v", v, v)
	return 0
}

// do runs one command and returns its map reply, or stops on an error.
func do(ctx context.Context, rdb *redis.Client, args ...interface{}) map[string]interface{} {
	reply, err := rdb.Do(ctx, args...).Result()
	if err != nil {
		log.Fatalf("%v: %v", args[0], err)
	}
	return asMap(reply)
}

func main() {
	log.SetFlags(0)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{
		Addr: net.JoinHostPort(env("REDIS_HOST", "127.0.0.1"), env("REDIS_PORT", "6379")),
	})
	defer rdb.Close()

	event := "demo-" + randomHex(6)
	fan := "fan-" + randomHex(4)
	token := "tok-" + randomHex(16) // the fan's opaque waiting token
	seat := "A-12"

	// The organiser puts 100 seats on sale.
	// Seats go to admitted fans only: a hold needs the pass TQ.ENTER gives.
	if err := rdb.Do(ctx, "TQ.CONFIG", event, "REQUIRE-PASS", 1).Err(); err != nil {
		log.Fatalf("TQ.CONFIG: %v", err)
	}
	seats, err := rdb.Do(ctx, "TQ.INVENTORY", event, "SET", 100).Int64()
	if err != nil {
		log.Fatalf("TQ.INVENTORY: %v", err)
	}
	fmt.Printf("event %s: %d seats on sale\n", event, seats)

	// 1. Join the waiting room.
	joined := do(ctx, rdb, "TQ.ENQUEUE", event, fan, token)
	fmt.Printf("joined: id=%v position=%v\n", joined["id"], joined["position"])

	// 2. Poll the position (each poll is also the heartbeat) until ready,
	// then 3. enter. NOT_READY means someone was admitted first: keep polling.
	entered := false
	for i := 0; i < 600 && !entered; i++ {
		pos := do(ctx, rdb, "TQ.POSITION", event, token)
		ready, eta := toInt(pos["ready"]), toInt(pos["eta_ms"])
		fmt.Printf("position=%v ready=%d eta_ms=%d\n", pos["position"], ready, eta)
		if ready == 1 {
			reply, err := rdb.Do(ctx, "TQ.ENTER", event, token).Result()
			if err == nil {
				entered = true
				admitted := asMap(reply)
				fmt.Printf("entered: position_was=%v\n", admitted["position_was"])
				fmt.Printf("pass %v until %v\n", admitted["pass"], admitted["expires_at"])
				break
			}
			if !strings.HasPrefix(err.Error(), "NOT_READY") {
				log.Fatalf("TQ.ENTER: %v", err)
			}
		}
		wait := time.Second // without an estimate
		if eta >= 0 {
			wait = time.Duration(eta) * time.Millisecond
			if wait < 100*time.Millisecond {
				wait = 100 * time.Millisecond
			} else if wait > 2*time.Second {
				wait = 2 * time.Second
			}
		}
		time.Sleep(wait)
	}
	if !entered {
		log.Fatal("not admitted after 600 polls")
	}

	// 4. Hold a seat (for the event's hold-ttl) ...
	left, err := rdb.Do(ctx, "TQ.HOLD", event, seat, fan).Int64()
	if err != nil {
		log.Fatalf("TQ.HOLD: %v", err)
	}
	fmt.Printf("held %s: %d seats left\n", seat, left)
	state := do(ctx, rdb, "TQ.SEAT", event, seat)
	fmt.Printf("seat %s: %v by %v, %v ms to pay\n", seat, state["state"], state["user"], state["ttl_ms"])

	// 5. ... and confirm it once paid; 6. checkout done: end the pass, so
	// that the place it held goes to the next fan.
	if err := rdb.Do(ctx, "TQ.CONFIRM", event, seat, fan).Err(); err != nil {
		log.Fatalf("TQ.CONFIRM: %v", err)
	}
	ended, err := rdb.Do(ctx, "TQ.PASS", event, fan, "REVOKE").Int64()
	if err != nil {
		log.Fatalf("TQ.PASS: %v", err)
	}
	fmt.Printf("pass ended: %d\n", ended)
	fmt.Printf("confirmed %s for %s\n", seat, fan)
}
