package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
	"github.com/receiptd/receiptd/projections"
)

// The wiring cmd/receiptd does: the service on a gRPC server, the REST
// gateway over a client connection to that server (so REST goes through its
// interceptors), and the OpenAPI document beside it.
func ExampleNewGateway() {
	reader := newFakeReader() // in receiptd, the projections read models
	reader.balances["reewild/027KO2"] = projections.Balance{Source: "reewild", UserID: "027KO2", DerivedPoints: dec("1656.54")}

	svc, err := api.NewReceiptService(reader, []string{"reewild", "reap"})
	if err != nil {
		log.Fatal(err)
	}
	grpcServer := grpc.NewServer() // plus the access interceptor
	receiptdv1.RegisterReceiptServiceServer(grpcServer, svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go grpcServer.Serve(lis)
	defer grpcServer.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	gateway, err := api.NewGateway(context.Background(), conn, api.GatewayOptions{})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", gateway)
	mux.Handle("/openapi.json", api.OpenAPIHandler())
	httpServer := httptest.NewServer(mux)
	defer httpServer.Close()

	resp, err := http.Get(httpServer.URL + "/v1/users/027KO2/balance")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	var balance struct {
		UserID         string `json:"userId"`
		DerivedPoints  string `json:"derivedPoints"`
		Reconciled     *bool  `json:"reconciled"`
		ReceiptsFailed *int   `json:"receiptsFailed"`
	}
	if err := json.Unmarshal(body, &balance); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status)
	fmt.Println(balance.UserID, balance.DerivedPoints, *balance.Reconciled, *balance.ReceiptsFailed)
	// Output:
	// 200 OK
	// 027KO2 1656.54 false 0
}
