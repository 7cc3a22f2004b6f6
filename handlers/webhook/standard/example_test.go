package standard_test

import (
	"fmt"
	"time"

	"github.com/receiptd/receiptd/handlers/webhook/standard"
)

// Sign makes the webhook-signature value of a delivery: here the test
// vector the Standard Webhooks reference implementations publish.
func ExampleSign() {
	secret := []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	sent := time.Unix(1614265330, 0)
	fmt.Println(standard.HeaderSignature+":", standard.Sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", sent, []byte(`{"test": 2432232314}`)))
	// Output:
	// webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}
