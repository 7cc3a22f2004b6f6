package api_test

import (
	"slices"
	"strings"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
	"github.com/receiptd/receiptd/handlers/api"
)

// servedFiles are the proto files whose services the server registers:
// receiptd.v1 (every file of the package, so a new .proto is covered
// too), health and reflection.
func servedServices(t *testing.T) []protoreflect.ServiceDescriptor {
	t.Helper()
	var out []protoreflect.ServiceDescriptor
	add := func(fd protoreflect.FileDescriptor) {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			if !slices.ContainsFunc(out, func(o protoreflect.ServiceDescriptor) bool { return o.FullName() == sd.FullName() }) {
				out = append(out, sd)
			}
		}
	}
	add(receiptdv1.File_receiptd_v1_receiptd_proto)
	protoregistry.GlobalFiles.RangeFilesByPackage("receiptd.v1", func(fd protoreflect.FileDescriptor) bool {
		add(fd)
		return true
	})
	add(healthpb.File_grpc_health_v1_health_proto)
	add(reflectionv1.File_grpc_reflection_v1_reflection_proto)
	add(reflectionv1alpha.File_grpc_reflection_v1alpha_reflection_proto)
	return out
}

func fullMethod(md protoreflect.MethodDescriptor) string {
	return "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
}

func isStringField(m protoreflect.MessageDescriptor, name string) bool {
	fd := m.Fields().ByName(protoreflect.Name(name))
	return fd != nil && fd.Kind() == protoreflect.StringKind && fd.Cardinality() != protoreflect.Repeated
}

// TestEveryRPCHasARule walks every method of every service the server
// registers: each must have a row in rules.go (an RPC without one is
// refused to everyone), and the fields a row names must exist.
func TestEveryRPCHasARule(t *testing.T) {
	rules := api.Rules()
	n := 0
	for _, sd := range servedServices(t) {
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			m := fullMethod(md)
			n++
			r, ok := rules[m]
			if !ok {
				t.Errorf("%s has no access rule: add a row to handlers/api/rules.go", m)
				continue
			}
			if r.Users == api.UserField && !isStringField(md.Input(), r.UserField) {
				t.Errorf("%s: rule checks request field %q, which %s does not have as a string", m, r.UserField, md.Input().FullName())
			}
			if r.Users == api.UserOwner && r.OwnerField != "" && !isStringField(md.Output(), r.OwnerField) {
				t.Errorf("%s: rule reads response field %q, which %s does not have as a string", m, r.OwnerField, md.Output().FullName())
			}
			if r.Users == api.UserSubjects {
				fd := md.Output().Fields().ByName(protoreflect.Name(r.OwnerField))
				if fd == nil || fd.Kind() != protoreflect.StringKind || fd.Cardinality() != protoreflect.Repeated || !isStringField(md.Output(), "id") {
					t.Errorf("%s: rule reads response fields %q (repeated string) and \"id\" (string), which %s does not have", m, r.OwnerField, md.Output().FullName())
				}
			}
		}
	}
	if n < 10 {
		t.Fatalf("walked only %d methods: the descriptors were not found", n)
	}
}

// TestNoRuleWithoutAnRPC: every row names a method that exists.
func TestNoRuleWithoutAnRPC(t *testing.T) {
	for m := range api.Rules() {
		svc, method, ok := strings.Cut(strings.TrimPrefix(m, "/"), "/")
		if !ok || !strings.HasPrefix(m, "/") {
			t.Errorf("rule %q is not a full method name (/package.Service/Method)", m)
			continue
		}
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
		sd, isService := d.(protoreflect.ServiceDescriptor)
		if err != nil || !isService || sd.Methods().ByName(protoreflect.Name(method)) == nil {
			t.Errorf("rule %q names no method", m)
		}
	}
}

// TestUserCallableRPCs pins the RPCs a user token may call at all: giving
// users a new RPC must be a deliberate change here too.
func TestUserCallableRPCs(t *testing.T) {
	var got []string
	for m, r := range api.Rules() {
		if r.Users != api.NoUsers {
			got = append(got, m)
		}
		// An admin RPC (one only admin opens to keys) is never a user's.
		// The feed lets admin keys subscribe beside feed keys: that does
		// not make it an admin RPC.
		adminOnly := len(r.Scopes) > 0 && !slices.ContainsFunc(r.Scopes, func(s api.Scope) bool { return s != api.ScopeAdmin })
		if adminOnly && r.Users != api.NoUsers {
			t.Errorf("%s: an admin RPC open to users", m)
		}
	}
	slices.Sort(got)
	want := []string{
		receiptdv1.ReceiptService_GetBalance_FullMethodName,
		receiptdv1.ReceiptService_GetReceipt_FullMethodName,
		receiptdv1.ReceiptService_ListReceiptEvents_FullMethodName,
		receiptdv1.ReceiptService_ListUserLedger_FullMethodName,
		receiptdv1.ReceiptService_ListUserReceipts_FullMethodName,
		receiptdv1.ReceiptService_WatchReceipt_FullMethodName,
		receiptdv1.ReceiptService_WatchUser_FullMethodName,
		receiptdv1.FeedService_Subscribe_FullMethodName,
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("user-callable RPCs = %q\nwant %q", got, want)
	}
}

func TestNewAccessRejectsBadRules(t *testing.T) {
	if _, err := api.NewAccess(api.AccessOptions{}); err != nil {
		t.Fatalf("the rule table is invalid: %v", err)
	}
	const m = "/receiptd.v1.ReceiptService/GetBalance"
	for name, r := range map[string]api.Rule{
		"nobody":                 {},
		"public with scopes":     {Public: true, Scopes: []api.Scope{api.ScopeReadAll}},
		"public for users":       {Public: true, Users: api.UserField, UserField: "user_id"},
		"user field unnamed":     {Scopes: []api.Scope{api.ScopeReadAll}, Users: api.UserField},
		"user field, not by it":  {Scopes: []api.Scope{api.ScopeReadAll}, UserField: "user_id"},
		"owner field, not owner": {Scopes: []api.Scope{api.ScopeReadAll}, Users: api.UserField, UserField: "user_id", OwnerField: "user_id"},
		"unknown user access":    {Scopes: []api.Scope{api.ScopeReadAll}, Users: 42},
		"subjects unnamed":       {Scopes: []api.Scope{api.ScopeFeed}, Users: api.UserSubjects},
		"subject field, no user": {Scopes: []api.Scope{api.ScopeFeed}, OwnerField: "user_ids"},
	} {
		if _, err := api.NewAccess(api.AccessOptions{Rules: map[string]api.Rule{m: r}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
