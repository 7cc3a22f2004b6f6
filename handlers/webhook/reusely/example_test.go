package reusely_test

import (
	"fmt"

	"github.com/receiptd/receiptd/handlers/webhook/reusely"
)

// Sign makes the Authorization value of a delivery from the object_id and
// timestamp its body carries: here the seed's example offer.created.
func ExampleSign() {
	fmt.Println(reusely.SignatureHeader+":", reusely.Sign([]byte("my-webhook-secret"), "93092", "1749441740"))
	// Output:
	// Authorization: 41d1da686aec56c3a9b4b5c08685c377bfb9caa9dda20b8a1fbb4a40893bfc3a
}

// SignWith signs for a source configured with another algorithm or
// encoding.
func ExampleSignWith() {
	sig, err := reusely.SignWith([]byte("my-webhook-secret"), reusely.AlgorithmSHA256, reusely.EncodingBase64, "93092", "1749441740")
	if err != nil {
		panic(err)
	}
	fmt.Println(sig)
	// Output:
	// tRVnHLVxsetQAQp1/YB9ZHlRz3ckP4NY2uu+mqYnD4A=
}
