// gogen: a second load generator for Chorus and Nchan, written over Debian's gorilla/websocket
// package, so that chorus-bench's figures can be checked by a client whose core the project did
// not write (docs/benchmarks.md, "Cross-check").
//
// One broadcast trial: N subscribers on one topic spread round-robin over the --url servers, one
// publisher at a fixed offered rate (WebSocket or HTTP), every message carrying its send time
// and sequence number ({"t":<ns>,"s":<seq>}), so that each delivery's latency and every loss
// is measured. The JSON it writes has the shape of chorus-bench's (scenario, target, connect,
// result.latency.p50Ms, result.deliveredPerSecond, result.lost, ...), plus "generator":"gogen".
//
// Build offline (Debian: golang, golang-github-gorilla-websocket-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o gogen ./bench/gogen
package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// ---- clock ---------------------------------------------------------------------------------

// base anchors every timestamp: time.Since reads Go's monotonic clock, and publisher and
// subscribers are in this one process, so send and receive times compare directly.
var base = time.Now()

func nowNs() int64 { return int64(time.Since(base)) }

// ---- latency histogram ---------------------------------------------------------------------

// hist is a log-linear histogram of nanosecond values with 1/1024 relative precision (about 3
// significant digits, like chorus-bench's HdrHistogram). One holds every subscriber's samples
// (see `latencies`).
type hist struct {
	counts []uint64
	count  uint64
	sum    float64
	max    int64
}

const histSub = 1024

func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	if u < 2*histSub {
		return int(u)
	}
	e := bits.Len64(u) - 11 // u>>e is in [1024, 2047]
	return 2*histSub + (e-1)*histSub + int(u>>uint(e)) - histSub
}

func valueOf(b int) int64 {
	if b < 2*histSub {
		return int64(b)
	}
	e := (b-2*histSub)/histSub + 1
	m := int64((b-2*histSub)%histSub + histSub)
	// the middle of the bucket
	return m<<uint(e) + (int64(1)<<uint(e))/2
}

func (h *hist) record(v int64) {
	b := bucketOf(v)
	if b >= len(h.counts) {
		n := make([]uint64, b+histSub)
		copy(n, h.counts)
		h.counts = n
	}
	h.counts[b]++
	h.count++
	h.sum += float64(v)
	if v > h.max {
		h.max = v
	}
}

func (h *hist) quantile(q float64) int64 {
	if h.count == 0 {
		return 0
	}
	target := uint64(math.Ceil(q * float64(h.count)))
	if target < 1 {
		target = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= target {
			v := valueOf(i)
			if v > h.max {
				v = h.max
			}
			return v
		}
	}
	return h.max
}

// ---- the JSON (chorus-bench's shape where it applies) ------------------------------------

type latencySummary struct {
	Count  uint64  `json:"count"`
	P50Ms  float64 `json:"p50Ms"`
	P90Ms  float64 `json:"p90Ms"`
	P99Ms  float64 `json:"p99Ms"`
	P999Ms float64 `json:"p999Ms"`
	MaxMs  float64 `json:"maxMs"`
	MeanMs float64 `json:"meanMs"`
}

type processUsage struct {
	Name       string  `json:"name"`
	Pid        int     `json:"pid"`
	CPUSeconds float64 `json:"cpuSeconds"`
	CPUPercent float64 `json:"cpuPercent"`
}

type trialResult struct {
	OfferedRate                float64        `json:"offeredRate"`
	PublishedPerSecond         float64        `json:"publishedPerSecond"`
	Published                  int64          `json:"published"`
	PublishFailures            int64          `json:"publishFailures"`
	PublisherBlockedTicks      int64          `json:"publisherBlockedTicks"`
	PublisherErrors            int64          `json:"publisherErrors"`
	ExpectedDeliveries         int64          `json:"expectedDeliveries"`
	Delivered                  int64          `json:"delivered"`
	Lost                       int64          `json:"lost"`
	LossPercent                float64        `json:"lossPercent"`
	DrainTimedOut              bool           `json:"drainTimedOut"`
	MeasuredDelivered          int64          `json:"measuredDelivered"`
	MeasuredSeconds            float64        `json:"measuredSeconds"`
	DeliverySeconds            float64        `json:"deliverySeconds"`
	OfferedDeliveriesPerSecond float64        `json:"offeredDeliveriesPerSecond"`
	DeliveredPerSecond         float64        `json:"deliveredPerSecond"`
	MeasuredDeliveredPerSecond float64        `json:"measuredDeliveredPerSecond"`
	Latency                    latencySummary `json:"latency"`
	OutOfOrder                 int64          `json:"outOfOrder"`
	Stale                      int64          `json:"stale"`
	Disconnected               int64          `json:"disconnected"`
	BenchCPUPercent            float64        `json:"benchCPUPercent"`
	Processes                  []processUsage `json:"processes"`
	ServerCPUMicrosPerDelivery *float64       `json:"serverCPUMicrosPerDelivery,omitempty"`
	BenchCPUMicrosPerDelivery  *float64       `json:"benchCPUMicrosPerDelivery,omitempty"`
}

type connectOutcome struct {
	Requested  int     `json:"requested"`
	Ready      int     `json:"ready"`
	Failed     int     `json:"failed"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"perSecond"`
	FirstError string  `json:"firstError,omitempty"`
}

type runResult struct {
	Generator   string         `json:"generator"`
	Scenario    string         `json:"scenario"`
	Target      string         `json:"target"`
	Label       string         `json:"label,omitempty"`
	StartedAt   string         `json:"startedAt"`
	Nodes       []string       `json:"nodes"`
	PublishNode string         `json:"publishNode"`
	PublishVia  string         `json:"publishVia"`
	Subscribers int            `json:"subscribers"`
	Topics      int            `json:"topics"`
	Threads     int            `json:"threads"`
	Connect     connectOutcome `json:"connect"`
	Result      *trialResult   `json:"result"`
}

// ---- options -------------------------------------------------------------------------------

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

var (
	target      = flag.String("target", "chorus", "chorus or nchan")
	urls        multi
	publishURL  = flag.String("publish-url", "", "server the publisher sends to (default: the first --url)")
	publishVia  = flag.String("publish-via", "ws", "ws: Chorus 'message' frames on /ws, Nchan frames on a /pub/<topic> WebSocket; http: POST /api/publish (Chorus) or /pub/<topic> (Nchan)")
	publishers  = flag.Int("publishers", 1, "HTTP publisher connections (one request in flight each)")
	subscribers = flag.Int("subscribers", 1000, "subscriber connections")
	rate        = flag.Float64("rate", 100, "offered messages per second")
	topic       = flag.String("topic", "bench.broadcast", "the topic")
	duration    = flag.Float64("duration", 10, "measured seconds of publishing")
	warmup      = flag.Float64("warmup", 1, "seconds of publishing before measuring")
	drain       = flag.Float64("drain", 10, "at most this many seconds to wait for the last deliveries")
	settle      = flag.Float64("settle", 1, "seconds to wait after connecting before publishing")
	connectConc = flag.Int("connect-concurrency", 200, "handshakes in flight at once")
	connectTO   = flag.Float64("connect-timeout", 15, "seconds a connection may take to be ready")
	jwtSecret   = flag.String("jwt-secret", os.Getenv("JWT_SECRET"), "HS256 secret to mint Chorus tokens")
	apiKey      = flag.String("api-key", os.Getenv("API_KEY"), "API key for Chorus's POST /api/publish")
	watches     multi
	jsonPath    = flag.String("json", "", "write the result as JSON to this file")
	label       = flag.String("label", "", "a label stored in the JSON")
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gogen: "+format+"\n", args...)
}

func hostPort(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "ws://"), "http://")
	return strings.TrimSuffix(s, "/")
}

// ---- Chorus tokens -------------------------------------------------------------------------

func mintToken(secret, subject string) string {
	enc := base64.RawURLEncoding
	now := time.Now().Unix()
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims := enc.EncodeToString([]byte(fmt.Sprintf(`{"exp":%d,"iat":%d,"sub":%q}`, now+7200, now, subject)))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(header + "." + claims))
	return header + "." + claims + "." + enc.EncodeToString(mac.Sum(nil))
}

// ---- marks shared by publisher and subscribers ---------------------------------------------

var (
	trialBase   atomic.Int64 // sequence numbers below: an earlier trial (ignored)
	measureBase atomic.Int64 // at or above: past the warm-up (counted for latency)
	closing     atomic.Bool  // set before the generator closes its own connections
	disconnects atomic.Int64 // subscribers whose connection ended before that
)

// marks parses the send time and sequence number the publisher put in a message's data
// (`{"t":<ns>,"s":<seq>}`); ok is false for anything else (Chorus's replies). One vectorized
// search finds `"t":`, the sequence follows it; digits are parsed in place, allocating nothing.
func marks(p []byte) (sent, seq int64, ok bool) {
	i := bytes.Index(p, keyT)
	if i < 0 {
		return 0, 0, false
	}
	sent, rest, ok := parseInt(p[i+len(keyT):])
	if !ok || len(rest) < len(keyS)+1 || !bytes.Equal(rest[1:1+len(keyS)], keyS) {
		return 0, 0, false
	}
	seq, _, ok = parseInt(rest[1+len(keyS):])
	return sent, seq, ok
}

// parseInt parses the decimal integer p starts with and returns what follows it.
func parseInt(p []byte) (v int64, rest []byte, ok bool) {
	negative := len(p) > 0 && p[0] == '-'
	if negative {
		p = p[1:]
	}
	k := 0
	for ; k < len(p) && p[k] >= '0' && p[k] <= '9'; k++ {
		if k == 18 {
			return 0, nil, false // past what an int64 surely holds: not one of ours
		}
		v = v*10 + int64(p[k]-'0')
	}
	if negative {
		v = -v
	}
	return v, p[k:], k > 0
}

// latencies collects every subscriber's measured latencies in one histogram. A subscriber
// keeps its samples in a small buffer of its own and folds them in here when it fills: a
// histogram per connection (1,000 of them, each scattered over a 100-KB array) cost a cache
// miss per delivery, the shared one stays in cache, and the lock is taken once per
// sampleBatch deliveries. Every subscriber receives the same messages, so the first fold of
// each comes after a number of samples of its own (foldAt): otherwise all would fold, and
// wait for the lock, on the same message.
var (
	latencyMu sync.Mutex
	latencies hist
)

const sampleBatch = 512

func foldSamples(samples []int64) {
	latencyMu.Lock()
	for _, v := range samples {
		latencies.record(v)
	}
	latencyMu.Unlock()
}

var keyT, keyS = []byte(`"t":`), []byte(`"s":`)

// subscriber is one WebSocket reading deliveries on its own goroutine.
type subscriber struct {
	conn *websocket.Conn
	// received and lastNs are read by the drain while the goroutine writes them; the padding
	// keeps two subscribers' counters off one cache line.
	received    atomic.Int64 // deliveries of this trial
	lastNs      atomic.Int64 // when the last one arrived
	_           [48]byte
	samples     []int64 // measured latencies not yet folded into `latencies`
	foldAt      int     // fold when samples holds this many (sampleBatch after the first fold)
	buf         []byte  // the message being read, reused
	trial       int64
	measured    int64
	firstMeasNs int64
	lastMeasNs  int64
	lastTrialNs int64
	lastSeq     int64
	outOfOrder  int64
	stale       int64
}

func (s *subscriber) read(done *sync.WaitGroup) {
	defer done.Done()
	s.firstMeasNs = math.MaxInt64
	s.lastSeq = -1
	s.samples = make([]int64, 0, sampleBatch)
	s.buf = make([]byte, 0, 1024)
	defer func() { foldSamples(s.samples) }()
	for {
		p, err := s.next()
		if err != nil {
			if !closing.Load() {
				disconnects.Add(1)
			}
			return
		}
		now := nowNs()
		sent, seq, ok := marks(p)
		if !ok {
			continue // Chorus's replies (subscribed, pong, ...)
		}
		if seq < trialBase.Load() {
			s.stale++
			continue
		}
		if seq <= s.lastSeq {
			s.outOfOrder++
		}
		s.lastSeq = seq
		s.trial++
		s.lastTrialNs = now
		if seq >= measureBase.Load() {
			s.measured++
			s.samples = append(s.samples, now-sent)
			if len(s.samples) >= s.foldAt {
				foldSamples(s.samples)
				s.samples = s.samples[:0]
				s.foldAt = sampleBatch
			}
			if s.firstMeasNs == math.MaxInt64 {
				s.firstMeasNs = now
			}
			s.lastMeasNs = now
		}
		s.received.Add(1)
		s.lastNs.Store(now)
	}
}

// next reads one whole message into the subscriber's buffer (valid until the next call), where
// gorilla's ReadMessage allocates a new one per message.
func (s *subscriber) next() ([]byte, error) {
	_, r, err := s.conn.NextReader()
	if err != nil {
		return nil, err
	}
	b := s.buf[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			s.buf = b
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

var dialer = &websocket.Dialer{HandshakeTimeout: 15 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}

// connectSubscriber opens one subscriber and waits until it is subscribed (Chorus: the
// `subscribed` reply; Nchan: the upgrade).
func connectSubscriber(index int, server string) (*websocket.Conn, error) {
	var u string
	if *target == "chorus" {
		u = "ws://" + server + "/ws?token=" + url.QueryEscape(mintToken(*jwtSecret, fmt.Sprintf("gogen-%d", index)))
	} else {
		u = "ws://" + server + "/sub/" + *topic
	}
	conn, resp, err := dialer.Dial(u, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%v (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	if tcp, ok := conn.UnderlyingConn().(*net.TCPConn); ok {
		tcp.SetNoDelay(true)
	}
	if *target == "chorus" {
		deadline := time.Now().Add(time.Duration(*connectTO * float64(time.Second)))
		conn.SetReadDeadline(deadline)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","topic":"`+*topic+`"}`)); err != nil {
			conn.Close()
			return nil, err
		}
		for {
			_, p, err := conn.ReadMessage()
			if err != nil {
				conn.Close()
				return nil, err
			}
			if bytes.Contains(p, []byte(`"type":"subscribed"`)) {
				break
			}
			if bytes.Contains(p, []byte(`"type":"error"`)) {
				conn.Close()
				return nil, fmt.Errorf("subscribe refused: %s", p)
			}
		}
		conn.SetReadDeadline(time.Time{})
	}
	return conn, nil
}

// ---- publishers ----------------------------------------------------------------------------

type publisher interface {
	// send publishes one message; false when it cannot take another now (back-pressure).
	send(sentAt, seq int64, measured bool) bool
	accepted() (trial, measured int64)
	failures() int64
	errors() int64
	close()
}

func payload(sentAt, seq int64) []byte {
	return []byte(`{"t":` + strconv.FormatInt(sentAt, 10) + `,"s":` + strconv.FormatInt(seq, 10) + `}`)
}

// wsPublisher writes each message as one frame (gorilla flushes per message). It reads its
// socket on a goroutine: Chorus may answer with errors, Nchan answers each publish with the
// channel's status.
type wsPublisher struct {
	conn         *websocket.Conn
	trial, meas  int64
	errs         atomic.Int64
	failed       int64
	chorusFrames bool
}

func newWSPublisher(server string) (*wsPublisher, error) {
	var u string
	chorus := *target == "chorus"
	if chorus {
		u = "ws://" + server + "/ws?token=" + url.QueryEscape(mintToken(*jwtSecret, "gogen-publisher"))
	} else {
		u = "ws://" + server + "/pub/" + *topic
	}
	conn, _, err := dialer.Dial(u, nil)
	if err != nil {
		return nil, err
	}
	if tcp, ok := conn.UnderlyingConn().(*net.TCPConn); ok {
		tcp.SetNoDelay(true)
	}
	p := &wsPublisher{conn: conn, chorusFrames: chorus}
	go func() {
		for {
			_, m, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if chorus && bytes.Contains(m, []byte(`"type":"error"`)) {
				if p.errs.Add(1) <= 3 {
					logf("publisher got %s", m)
				}
			}
		}
	}()
	return p, nil
}

func (p *wsPublisher) send(sentAt, seq int64, measured bool) bool {
	var frame []byte
	if p.chorusFrames {
		frame = append([]byte(`{"type":"message","topic":"`+*topic+`","data":`), payload(sentAt, seq)...)
		frame = append(frame, '}')
	} else {
		frame = payload(sentAt, seq)
	}
	if err := p.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
		p.failed++
		return false
	}
	p.trial++
	if measured {
		p.meas++
	}
	return true
}
func (p *wsPublisher) accepted() (int64, int64) { return p.trial, p.meas }
func (p *wsPublisher) failures() int64          { return p.failed }
func (p *wsPublisher) errors() int64            { return p.errs.Load() }
func (p *wsPublisher) close()                   { p.conn.Close() }

// httpPublisher: `--publishers` goroutines, each with its own keep-alive connection and one
// request in flight; the pacer hands them messages through a channel and counts a tick as
// blocked when none is free. The send time is stamped when a worker sends the request.
type httpPublisher struct {
	work           chan [2]int64 // seq, measured (0/1)
	trial, meas    atomic.Int64
	failed, errs   atomic.Int64
	wg             sync.WaitGroup
	closeOnce      sync.Once
	url            string
	chorusEnvelope bool
}

func newHTTPPublisher(server string, n int) *httpPublisher {
	p := &httpPublisher{work: make(chan [2]int64, n), chorusEnvelope: *target == "chorus"}
	if p.chorusEnvelope {
		p.url = "http://" + server + "/api/publish"
	} else {
		p.url = "http://" + server + "/pub/" + *topic
	}
	for i := 0; i < n; i++ {
		p.wg.Add(1)
		go p.worker()
	}
	return p
}

func (p *httpPublisher) worker() {
	defer p.wg.Done()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}, Timeout: 30 * time.Second}
	for job := range p.work {
		body := payload(nowNs(), job[0])
		if p.chorusEnvelope {
			body = append(append([]byte(`{"topic":"`+*topic+`","data":`), body...), '}')
		}
		req, _ := http.NewRequest("POST", p.url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if p.chorusEnvelope {
			req.Header.Set("X-API-Key", *apiKey)
		}
		resp, err := client.Do(req)
		if err != nil {
			if p.failed.Add(1) <= 3 {
				logf("publish: %v", err)
			}
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			p.trial.Add(1)
			if job[1] == 1 {
				p.meas.Add(1)
			}
		} else if p.errs.Add(1) <= 3 {
			logf("publish answered HTTP %d", resp.StatusCode)
		}
	}
}

func (p *httpPublisher) send(_, seq int64, measured bool) bool {
	m := int64(0)
	if measured {
		m = 1
	}
	select {
	case p.work <- [2]int64{seq, m}:
		return true
	default:
		return false
	}
}
func (p *httpPublisher) accepted() (int64, int64) { return p.trial.Load(), p.meas.Load() }
func (p *httpPublisher) failures() int64          { return p.failed.Load() }
func (p *httpPublisher) errors() int64            { return p.errs.Load() }
func (p *httpPublisher) close() {
	p.closeOnce.Do(func() { close(p.work) })
	p.wg.Wait()
}

// ---- CPU of watched processes -------------------------------------------------------------

type watched struct {
	name string
	pid  int
}

// cpuTicks reads utime+stime (clock ticks) of /proc/PID/stat.
func cpuTicks(pid string) (float64, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0, false
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100.0, true // USER_HZ is 100 on Linux
}

// ---- the trial -----------------------------------------------------------------------------

func main() {
	flag.Var(&urls, "url", "a server to connect subscribers to (repeatable), host:port")
	flag.Var(&watches, "watch", "a server process to sample for CPU, NAME=PID (repeatable)")
	flag.Parse()
	if len(urls) == 0 {
		logf("give at least one --url")
		os.Exit(2)
	}
	if *target != "chorus" && *target != "nchan" {
		logf("--target must be chorus or nchan")
		os.Exit(2)
	}
	if *target == "chorus" && *jwtSecret == "" {
		logf("Chorus needs --jwt-secret (or JWT_SECRET)")
		os.Exit(2)
	}
	servers := make([]string, len(urls))
	for i, u := range urls {
		servers[i] = hostPort(u)
	}
	pubServer := servers[0]
	if *publishURL != "" {
		pubServer = hostPort(*publishURL)
	}
	var watchList []watched
	for _, w := range watches {
		parts := strings.SplitN(w, "=", 2)
		pid, err := strconv.Atoi(parts[len(parts)-1])
		if len(parts) != 2 || err != nil {
			logf("--watch expects NAME=PID, got %s", w)
			os.Exit(2)
		}
		watchList = append(watchList, watched{parts[0], pid})
	}
	trialBase.Store(math.MaxInt64)
	measureBase.Store(math.MaxInt64)
	started := time.Now().UTC().Format(time.RFC3339)

	// Connect, at most --connect-concurrency handshakes at once.
	subs := make([]*subscriber, *subscribers)
	var firstErr string
	var failed int
	var mu sync.Mutex
	sem := make(chan struct{}, *connectConc)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := 0; i < *subscribers; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			conn, err := connectSubscriber(i, servers[i%len(servers)])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				if firstErr == "" {
					firstErr = err.Error()
				}
				return
			}
			subs[i] = &subscriber{conn: conn, foldAt: 1 + i%sampleBatch}
		}(i)
	}
	wg.Wait()
	connectSeconds := time.Since(t0).Seconds()
	var ready []*subscriber
	for _, s := range subs {
		if s != nil {
			ready = append(ready, s)
		}
	}
	logf("%d/%d connections ready in %.2f s, %d failed%s", len(ready), *subscribers, connectSeconds, failed,
		map[bool]string{true: " (first: " + firstErr + ")", false: ""}[firstErr != ""])
	if len(ready) == 0 {
		os.Exit(1)
	}
	var readers sync.WaitGroup
	for _, s := range ready {
		readers.Add(1)
		go s.read(&readers)
	}
	time.Sleep(time.Duration(*settle * float64(time.Second)))

	var pub publisher
	if *publishVia == "http" {
		pub = newHTTPPublisher(pubServer, *publishers)
	} else {
		p, err := newWSPublisher(pubServer)
		if err != nil {
			logf("publisher: %v", err)
			os.Exit(1)
		}
		pub = p
	}

	// CPU before.
	cpuBefore := map[int]float64{}
	for _, w := range watchList {
		cpuBefore[w.pid], _ = cpuTicks(strconv.Itoa(w.pid))
	}
	selfBefore, _ := cpuTicks("self")
	wallStart := time.Now()

	// Publish: a 1 ms ticker; each tick sends what the elapsed time calls for.
	trialBase.Store(0)
	warmN := int64(math.Round(*warmup * *rate))
	total := warmN + int64(math.Round(*duration**rate))
	measureBase.Store(warmN)
	startNs := nowNs()
	var seq int64
	var blocked int64
	var measureStartNs int64
	ticker := time.NewTicker(time.Millisecond)
	for seq < total && pub.failures() < 100 {
		<-ticker.C
		due := int64(float64(nowNs()-startNs) / 1e9 * *rate)
		if due > total {
			due = total
		}
		for seq < due {
			if seq == warmN {
				measureStartNs = nowNs()
			}
			if !pub.send(nowNs(), seq, seq >= warmN) {
				blocked++
				break
			}
			seq++
		}
	}
	ticker.Stop()
	endNs := nowNs()
	if measureStartNs == 0 {
		measureStartNs = startNs
	}
	if hp, ok := pub.(*httpPublisher); ok {
		hp.close() // waits for the requests in flight
	}
	acceptedTrial, acceptedMeasured := pub.accepted()
	expected := acceptedTrial * int64(len(ready))

	// Drain: until everything arrived, nothing arrived for 5 s, or --drain seconds passed.
	drainStart := time.Now()
	drainTimedOut := false
	progress := func() (received, last int64) {
		for _, s := range ready {
			received += s.received.Load()
			if t := s.lastNs.Load(); t > last {
				last = t
			}
		}
		return
	}
	for {
		received, last := progress()
		if received >= expected {
			break
		}
		if time.Since(drainStart).Seconds() > *drain {
			drainTimedOut = nowNs()-last < int64(time.Second)
			break
		}
		if last > 0 && nowNs()-last > 5*int64(time.Second) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	wall := time.Since(wallStart).Seconds()
	var procs []processUsage
	var serverCPU float64
	for _, w := range watchList {
		after, ok := cpuTicks(strconv.Itoa(w.pid))
		if !ok {
			continue
		}
		used := after - cpuBefore[w.pid]
		serverCPU += used
		procs = append(procs, processUsage{Name: w.name, Pid: w.pid, CPUSeconds: used, CPUPercent: 100 * used / wall})
	}
	selfAfter, _ := cpuTicks("self")

	// Stop the readers, then merge what they recorded (no reader touches its counters after).
	closing.Store(true)
	disconnected := disconnects.Load()
	for _, s := range ready {
		s.conn.Close()
	}
	readers.Wait()
	pub.close()

	h := &latencies
	var delivered, measured, outOfOrder, stale int64
	firstMeas, lastMeas, lastTrial := int64(math.MaxInt64), int64(0), int64(0)
	for _, s := range ready {
		delivered += s.trial
		measured += s.measured
		outOfOrder += s.outOfOrder
		stale += s.stale
		if s.firstMeasNs < firstMeas {
			firstMeas = s.firstMeasNs
		}
		if s.lastMeasNs > lastMeas {
			lastMeas = s.lastMeasNs
		}
		if s.lastTrialNs > lastTrial {
			lastTrial = s.lastTrialNs
		}
	}
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	r := &trialResult{
		OfferedRate:           *rate,
		Published:             acceptedMeasured,
		PublishFailures:       pub.failures(),
		PublisherBlockedTicks: blocked,
		PublisherErrors:       pub.errors(),
		ExpectedDeliveries:    expected,
		Delivered:             delivered,
		Lost:                  expected - delivered,
		DrainTimedOut:         drainTimedOut,
		MeasuredDelivered:     measured,
		MeasuredSeconds:       float64(endNs-measureStartNs) / 1e9,
		OutOfOrder:            outOfOrder,
		Stale:                 stale,
		Disconnected:          disconnected,
		Processes:             procs,
		Latency: latencySummary{
			Count: h.count, P50Ms: ms(h.quantile(0.5)), P90Ms: ms(h.quantile(0.9)), P99Ms: ms(h.quantile(0.99)),
			P999Ms: ms(h.quantile(0.999)), MaxMs: ms(h.max),
		},
	}
	if h.count > 0 {
		r.Latency.MeanMs = h.sum / float64(h.count) / 1e6
	}
	if expected > 0 {
		r.LossPercent = 100 * float64(r.Lost) / float64(expected)
	}
	if r.MeasuredSeconds > 0 {
		r.PublishedPerSecond = float64(acceptedMeasured) / r.MeasuredSeconds
	}
	r.OfferedDeliveriesPerSecond = *rate * float64(len(ready))
	if lastTrial > startNs {
		r.DeliverySeconds = float64(lastTrial-startNs) / 1e9
		r.DeliveredPerSecond = float64(delivered) / r.DeliverySeconds
	}
	if lastMeas > measureStartNs {
		r.MeasuredDeliveredPerSecond = float64(measured) / (float64(lastMeas-measureStartNs) / 1e9)
	}
	r.BenchCPUPercent = 100 * (selfAfter - selfBefore) / wall
	if delivered > 0 {
		b := (selfAfter - selfBefore) / float64(delivered) * 1e6
		r.BenchCPUMicrosPerDelivery = &b
		if len(procs) > 0 {
			s := serverCPU / float64(delivered) * 1e6
			r.ServerCPUMicrosPerDelivery = &s
		}
	}
	via := *publishVia
	report := runResult{
		Generator: "gogen", Scenario: "broadcast", Target: *target, Label: *label, StartedAt: started,
		Nodes: servers, PublishNode: pubServer, PublishVia: via, Subscribers: len(ready), Topics: 1,
		Threads: runtime.GOMAXPROCS(0),
		Connect: connectOutcome{
			Requested: *subscribers, Ready: len(ready), Failed: failed, Seconds: connectSeconds,
			PerSecond: float64(len(ready)) / math.Max(connectSeconds, 1e-9), FirstError: firstErr,
		},
		Result: r,
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "== broadcast against %s (gogen) ==\n", *target)
	fmt.Fprintf(out, "subscribers      %d ready on %s, publish via %s to %s\n", len(ready), strings.Join(servers, ", "), via, pubServer)
	fmt.Fprintf(out, "published        %d measured (%.1f/s of %.0f offered), %d blocked ticks, %d failures, %d errors\n",
		acceptedMeasured, r.PublishedPerSecond, *rate, blocked, r.PublishFailures, r.PublisherErrors)
	fmt.Fprintf(out, "delivered        %d of %d expected, lost %d (%.3f %%)%s, %.0f deliveries/s, %d out of order\n",
		delivered, expected, r.Lost, r.LossPercent, map[bool]string{true: " (drain timed out)", false: ""}[drainTimedOut],
		r.DeliveredPerSecond, outOfOrder)
	fmt.Fprintf(out, "latency          p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms (%d samples)\n",
		r.Latency.P50Ms, r.Latency.P90Ms, r.Latency.P99Ms, r.Latency.P999Ms, r.Latency.MaxMs, h.count)
	if r.ServerCPUMicrosPerDelivery != nil {
		fmt.Fprintf(out, "server CPU       %.3f µs per delivery\n", *r.ServerCPUMicrosPerDelivery)
	}
	fmt.Fprintf(out, "generator CPU    %.0f %% of a core\n", r.BenchCPUPercent)
	out.Flush()
	if *jsonPath != "" {
		b, _ := json.MarshalIndent(report, "", "  ")
		if err := os.WriteFile(*jsonPath, append(b, '\n'), 0o644); err != nil {
			logf("cannot write %s: %v", *jsonPath, err)
			os.Exit(1)
		}
		logf("wrote %s", *jsonPath)
	}
}
