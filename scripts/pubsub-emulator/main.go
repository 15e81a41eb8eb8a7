// Command pubsub-emulator serves Google's in-memory Pub/Sub fake (pstest) over gRPC for the tests.
//
// It prints "debug 127.0.0.1:PORT" and then "listening 127.0.0.1:PORT" when ready, and serves until
// SIGTERM or SIGINT. For outage tests the gRPC port can go down and come back on the same port while
// topics, subscriptions and messages survive: SIGUSR1 or POST /pause closes the listener and every
// connection, SIGUSR2 or POST /resume listens again. The debug port also answers
// GET /messages?topic=T[&offset=N] with every message published to T as JSON lines, in publish order,
// and GET /count?topic=T with their number. Only those two lines go to stdout; the log goes to stderr.
//
// Publish requests are held to Pub/Sub's own limits (cloud.google.com/pubsub/quotas, "Resource limits"),
// which pstest does not check: a request over 10 MiB, or a message whose data, attributes and ordering
// key come to over 10 MB, is refused with INVALID_ARGUMENT, as the service refuses it. A client that
// passes here therefore passes there; one that does not would be stalled there and must be here too.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Pub/Sub's limits on a Publish call: the whole request, in bytes of its wire form, and one message,
// counted as the service counts it (data, plus each attribute's key and value, plus the ordering key).
const (
	maxRequestBytes = 10 << 20
	maxMessageBytes = 10_000_000
	publishMethod   = "/google.pubsub.v1.Publisher/Publish"
)

// grpc's own receive limit stays above the request limit, so that an oversized request reaches
// enforceLimits and gets Pub/Sub's INVALID_ARGUMENT rather than grpc's RESOURCE_EXHAUSTED.
const maxReceiveBytes = 64 << 20

// messageSize is a message's size as Pub/Sub counts it against maxMessageBytes.
func messageSize(m *pb.PubsubMessage) int {
	size := len(m.Data) + len(m.OrderingKey)
	for k, v := range m.Attributes {
		size += len(k) + len(v)
	}
	return size
}

// enforceLimits refuses a Publish request over Pub/Sub's limits before pstest sees it.
func enforceLimits(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if publish, ok := req.(*pb.PublishRequest); ok && info.FullMethod == publishMethod {
		if size := proto.Size(publish); size > maxRequestBytes {
			return nil, status.Errorf(codes.InvalidArgument, "Request payload size exceeds the limit: %d bytes.", maxRequestBytes)
		}
		for i, m := range publish.Messages {
			if size := messageSize(m); size > maxMessageBytes {
				return nil, status.Errorf(codes.InvalidArgument, "The value for message_size is too large. You passed %d in the request (message %d), but the maximum value is %d.", size, i, maxMessageBytes)
			}
		}
	}
	return handler(ctx, req)
}

// front owns the public gRPC port. The fake keeps its state in pstest.GServer, so a fresh
// grpc.Server registered on the same GServer can replace a stopped one without losing anything.
type front struct {
	mu   sync.Mutex
	addr string
	fake *pstest.Server
	gsrv *grpc.Server // nil while paused
}

func (f *front) up() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gsrv != nil {
		return nil
	}
	lis, err := net.Listen("tcp", f.addr)
	if err != nil {
		return err
	}
	f.addr = lis.Addr().String() // pins the port chosen for --port 0, so resume reuses it
	g := grpc.NewServer(grpc.MaxRecvMsgSize(maxReceiveBytes), grpc.UnaryInterceptor(enforceLimits))
	pb.RegisterPublisherServer(g, &f.fake.GServer)
	pb.RegisterSubscriberServer(g, &f.fake.GServer)
	pb.RegisterSchemaServiceServer(g, &f.fake.GServer)
	go g.Serve(lis)
	f.gsrv = g
	return nil
}

func (f *front) down() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gsrv != nil {
		f.gsrv.Stop()
		f.gsrv = nil
	}
}

type jsonMessage struct {
	ID          string            `json:"id"`
	Data        []byte            `json:"data"` // base64
	Attributes  map[string]string `json:"attributes"`
	OrderingKey string            `json:"orderingKey"`
	PublishTime time.Time         `json:"publishTime"`
}

// topicMessages accepts a topic's short name or its full "projects/P/topics/T" name.
func topicMessages(fake *pstest.Server, topic string) []*pstest.Message {
	var out []*pstest.Message
	for _, m := range fake.Messages() {
		if m.Topic == topic || strings.HasSuffix(m.Topic, "/topics/"+topic) {
			out = append(out, m)
		}
	}
	return out
}

func debugHandler(f *front) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, len(topicMessages(f.fake, r.URL.Query().Get("topic"))))
	})
	mux.HandleFunc("GET /messages", func(w http.ResponseWriter, r *http.Request) {
		msgs := topicMessages(f.fake, r.URL.Query().Get("topic"))
		offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		if offset > len(msgs) {
			offset = len(msgs)
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		out := bufio.NewWriterSize(w, 1<<16)
		enc := json.NewEncoder(out)
		for _, m := range msgs[offset:] {
			if err := enc.Encode(jsonMessage{m.ID, m.Data, m.Attributes, m.OrderingKey, m.PublishTime}); err != nil {
				return
			}
		}
		out.Flush()
	})
	mux.HandleFunc("POST /pause", func(w http.ResponseWriter, r *http.Request) { f.down() })
	mux.HandleFunc("POST /resume", func(w http.ResponseWriter, r *http.Request) {
		if err := f.up(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	return mux
}

func main() {
	host := flag.String("host", "127.0.0.1", "listen host")
	port := flag.Int("port", 0, "gRPC port, 0 for a free one")
	debugPort := flag.Int("debug-port", 0, "HTTP debug port, 0 for a free one")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	// pstest insists on serving its own listener too; it stays private on a loopback port nobody is told.
	fake := pstest.NewServerWithAddress("127.0.0.1:0")
	f := &front{addr: net.JoinHostPort(*host, strconv.Itoa(*port)), fake: fake}
	if err := f.up(); err != nil {
		log.Fatalf("listen: %v", err)
	}
	dlis, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*debugPort)))
	if err != nil {
		log.Fatalf("listen debug: %v", err)
	}
	go http.Serve(dlis, debugHandler(f))
	fmt.Printf("debug %s\nlistening %s\n", dlis.Addr(), f.addr)
	os.Stdout.Sync()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2)
	for s := range sig {
		switch s {
		case syscall.SIGUSR1:
			f.down()
			log.Print("paused")
		case syscall.SIGUSR2:
			if err := f.up(); err != nil {
				log.Printf("resume: %v", err)
			} else {
				log.Print("resumed")
			}
		default:
			f.down()
			fake.Close()
			return
		}
	}
}
