package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/receiptd/receiptd/bench/benchdata"
	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// known collects ids the server acknowledged, for queries that hit.
type known struct {
	u        benchdata.Universe
	mu       sync.Mutex
	receipts []int
	users    []int
}

const maxKnown = 200_000

// add records delivery k's receipt or user.
func (kn *known) add(k int) {
	kn.mu.Lock()
	defer kn.mu.Unlock()
	if k < kn.u.Users {
		if len(kn.users) < maxKnown {
			kn.users = append(kn.users, k)
		}
		return
	}
	if len(kn.receipts) < maxKnown {
		kn.receipts = append(kn.receipts, (k-kn.u.Users)/benchdata.EventsPerReceipt)
	}
}

func (kn *known) snapshot() (receipts, users []int) {
	kn.mu.Lock()
	defer kn.mu.Unlock()
	return slices.Clone(kn.receipts), slices.Clone(kn.users)
}

// queryLoad runs GetReceipt and GetBalance alternately, closed loop, from
// workers goroutines over conns gRPC connections, measuring the calls that
// complete in [warmup, warmup+measure). A user a receipt names has a
// balance view, so every call is for an id the read models hold (once the
// projection has caught up: NotFound is counted as an error).
func queryLoad(ctx context.Context, addr string, kn *known, conns, workers int, warmup, measure time.Duration) (*stats, error) {
	receipts, _ := kn.snapshot()
	if len(receipts) == 0 {
		return nil, fmt.Errorf("no acknowledged receipt to query")
	}
	clients := make([]receiptdv1.ReceiptServiceClient, conns)
	for i := range clients {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		defer cc.Close()
		clients[i] = receiptdv1.NewReceiptServiceClient(cc)
	}
	start := time.Now()
	t0, t1 := start.Add(warmup), start.Add(warmup+measure)
	records := make([]*record, workers)
	var wg sync.WaitGroup
	for w := range workers {
		rec := &record{codes: map[int]int{}}
		records[w] = rec
		c := clients[w%conns]
		rng := rand.New(rand.NewPCG(uint64(w), 77))
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				r := receipts[rng.IntN(len(receipts))]
				began := time.Now()
				if !began.Before(t1) {
					return
				}
				var err error
				if i%2 == 0 {
					_, err = c.GetReceipt(ctx, &receiptdv1.GetReceiptRequest{ReceiptId: string(kn.u.ReceiptID(r))})
				} else {
					_, err = c.GetBalance(ctx, &receiptdv1.GetBalanceRequest{UserId: kn.u.UserID(kn.u.ReceiptUser(r))})
				}
				done := time.Now()
				if done.Before(t0) || !done.Before(t1) {
					continue
				}
				code := http.StatusOK
				if err != nil {
					code = grpcCodeBase + int(status.Code(err))
				}
				rec.codes[code]++
				if err == nil {
					rec.ok++
					rec.lat = append(rec.lat, done.Sub(began))
					continue
				}
				rec.errs++
				if rec.firstErr == "" {
					rec.firstErr = err.Error()
				}
			}
		})
	}
	wg.Wait()
	s := &stats{window: t1.Sub(t0), codes: map[int]int{}}
	for _, r := range records {
		s.ok += r.ok
		s.errs += r.errs
		s.lat = append(s.lat, r.lat...)
		for c, n := range r.codes {
			s.codes[c] += n
		}
		if s.firstErr == "" {
			s.firstErr = r.firstErr
		}
	}
	slices.Sort(s.lat)
	return s, nil
}
