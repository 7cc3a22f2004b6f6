package reewild_test

import (
	"fmt"

	"github.com/receiptd/receiptd/handlers/webhook/reewild"
)

// Sign makes the X-Reewild-Signature of a body, as Reewild sends it.
func ExampleSign() {
	body := []byte(`{"eventType":"receipt.failed","data":{"receiptID":"r1"}}`)
	fmt.Println(reewild.SignatureHeader+":", reewild.Sign([]byte("my-webhook-secret"), body))
	// Output:
	// X-Reewild-Signature: 0d85d74d2f994845f4e08ee151038d29a049a14d67f446727c6c3ce7e6f33415
}
