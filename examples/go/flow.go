// One fan's whole way through a TQ sale with redigo:
// join the queue -> poll the position -> enter (a pass) -> hold a seat
// -> confirm it -> end the pass.
//
//	apt-get install golang-go golang-github-gomodule-redigo-dev
//	cd examples/go && GO111MODULE=off GOPATH=/usr/share/gocode \
//	  REDIS_HOST=127.0.0.1 REDIS_PORT=6379 go run flow.go
//
// Go's GOPATH mode with Debian's redigo sources: no go.mod, no module
// download. Needs a server with the tq module loaded. Every run uses a
// fresh, random event name. TQ commands go through conn.Do; map replies come
// back as flat field/value arrays (RESP2, redigo's protocol).
package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
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

// text renders one reply value: a bulk string as itself, an integer in
// decimal.
func text(v interface{}) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case nil:
		return "nil"
	}
	return fmt.Sprint(v)
}

// asMap turns a TQ map reply (a flat field/value array in RESP2) into
// field -> value text.
func asMap(reply interface{}) map[string]string {
	values, err := redis.Values(reply, nil)
	if err != nil || len(values)%2 != 0 {
		log.Fatalf("expected a map reply, got %T %v", reply, reply)
	}
	out := make(map[string]string, len(values)/2)
	for i := 0; i < len(values); i += 2 {
		out[text(values[i])] = text(values[i+1])
	}
	return out
}

// toInt reads an integer field.
func toInt(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		log.Fatalf("expected an integer, got %q", s)
	}
	return n
}

// do runs one command and returns its map reply, or stops on an error.
func do(conn redis.Conn, args ...interface{}) map[string]string {
	reply, err := conn.Do(args[0].(string), args[1:]...)
	if err != nil {
		log.Fatalf("%v: %v", args[0], err)
	}
	return asMap(reply)
}

func main() {
	log.SetFlags(0)
	conn, err := redis.Dial("tcp",
		net.JoinHostPort(env("REDIS_HOST", "127.0.0.1"), env("REDIS_PORT", "6379")),
		redis.DialConnectTimeout(5*time.Second),
		redis.DialReadTimeout(5*time.Second))
	if err != nil {
		log.Fatalf("error: %v", err)
	}
	defer conn.Close()

	event := "demo-" + randomHex(6)
	fan := "fan-" + randomHex(4)
	token := "tok-" + randomHex(16) // the fan's opaque waiting token
	seat := "A-12"

	// The organiser puts 100 seats on sale.
	// Seats go to admitted fans only: a hold needs the pass TQ.ENTER gives.
	if _, err := conn.Do("TQ.CONFIG", event, "REQUIRE-PASS", 1); err != nil {
		log.Fatalf("TQ.CONFIG: %v", err)
	}
	seats, err := redis.Int64(conn.Do("TQ.INVENTORY", event, "SET", 100))
	if err != nil {
		log.Fatalf("TQ.INVENTORY: %v", err)
	}
	fmt.Printf("event %s: %d seats on sale\n", event, seats)

	// 1. Join the waiting room.
	joined := do(conn, "TQ.ENQUEUE", event, fan, token)
	fmt.Printf("joined: id=%s position=%s\n", joined["id"], joined["position"])

	// 2. Poll the position (each poll is also the heartbeat) until ready,
	// then 3. enter. NOT_READY means someone was admitted first: keep polling.
	entered := false
	for i := 0; i < 600 && !entered; i++ {
		pos := do(conn, "TQ.POSITION", event, token)
		ready, eta := toInt(pos["ready"]), toInt(pos["eta_ms"])
		fmt.Printf("position=%s ready=%d eta_ms=%d\n", pos["position"], ready, eta)
		if ready == 1 {
			reply, err := conn.Do("TQ.ENTER", event, token)
			if err == nil {
				entered = true
				admitted := asMap(reply)
				fmt.Printf("entered: position_was=%s\n", admitted["position_was"])
				fmt.Printf("pass %s until %s\n", admitted["pass"], admitted["expires_at"])
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
	left, err := redis.Int64(conn.Do("TQ.HOLD", event, seat, fan))
	if err != nil {
		log.Fatalf("TQ.HOLD: %v", err)
	}
	fmt.Printf("held %s: %d seats left\n", seat, left)
	state := do(conn, "TQ.SEAT", event, seat)
	fmt.Printf("seat %s: %s by %s, %s ms to pay\n", seat, state["state"], state["user"], state["ttl_ms"])

	// 5. ... and confirm it once paid; 6. checkout done: end the pass, so
	// that the place it held goes to the next fan.
	ok, err := redis.String(conn.Do("TQ.CONFIRM", event, seat, fan))
	if err != nil {
		log.Fatalf("TQ.CONFIRM: %v", err)
	}
	if ok != "OK" {
		log.Fatalf("TQ.CONFIRM replied %q", ok)
	}
	ended, err := redis.Int64(conn.Do("TQ.PASS", event, fan, "REVOKE"))
	if err != nil {
		log.Fatalf("TQ.PASS: %v", err)
	}
	fmt.Printf("pass ended: %d\n", ended)
	fmt.Printf("confirmed %s for %s\n", seat, fan)
}
