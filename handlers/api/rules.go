package api

import (
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	receiptdv1 "github.com/receiptd/receiptd/gen/go/receiptd/v1"
)

// Scope is a right an API key holds (DESIGN.md, "Access").
type Scope string

const (
	// ScopeReadAll reads every user's data: receipts, balances, entities,
	// timelines, statistics. Backends hold it.
	ScopeReadAll Scope = "read:all"
	// ScopeAdmin runs operations: audit, rebuild, quarantine re-processing,
	// the console. It does not imply read:all; an operator key lists both.
	ScopeAdmin Scope = "admin"
	// ScopeFeed subscribes to the whole feed (FeedService.Subscribe, GET
	// /v1/feed): every user's events. A downstream system holds it; it
	// reads nothing else.
	ScopeFeed Scope = "feed"
)

// Scopes lists every scope, for config validation.
var Scopes = []Scope{ScopeReadAll, ScopeAdmin, ScopeFeed}

// UserAccess says whether, and for which data, a user principal (a verified
// JWT) may call an RPC it holds no scope for.
type UserAccess int

const (
	// NoUsers: users may not call the RPC at all (PERMISSION_DENIED).
	NoUsers UserAccess = iota
	// UserField: the request names the user it reads in the string field
	// Rule.UserField (proto name, such as "user_id"); the interceptor
	// requires it to equal the caller's user id before the handler runs,
	// and answers PERMISSION_DENIED otherwise. For a streaming RPC, every
	// message the client sends is checked.
	UserField
	// UserOwner: the request names something (a receipt) whose owner is
	// known only once it is loaded. With Rule.OwnerField set, the
	// interceptor reads the owner from that string field of every response
	// message (unary answer or streamed message) and answers NOT_FOUND if it
	// is not the caller. With no OwnerField (a response that does not carry
	// its owner), the handler must call AuthorizeOwner(ctx, owner) before
	// answering, and answer its error (it matches projections.ErrNotFound).
	// Fail closed: a user answered without either check gets INTERNAL
	// instead. For these rules every NOT_FOUND a user gets reads the same
	// ("<RPC>: not found"), whether the thing is missing or someone else's,
	// so existence does not leak.
	UserOwner
	// UserSubjects: a stream of messages about many users (the feed),
	// which the handler filters to the caller's (RestrictedUser tells it
	// whose). Rule.OwnerField names a repeated string field of every
	// response message, the users it is about; the interceptor fails
	// closed on a message to a restricted user that does not name them
	// there (INTERNAL: the handler's filter is wrong), unless the message
	// has no subject at all: an empty string field "id" (a checkpoint,
	// which carries a position only).
	UserSubjects
)

// Rule is what a principal needs to call one RPC. A principal holding any
// of Scopes may call it for any data. A user principal holding none of them
// may call it as Users says. Public RPCs need no credentials at all.
//
// Any request with a string field named "source" is also checked against a
// user's allowed sources (a JWT issuer configured with sources); empty means
// the default source.
type Rule struct {
	Public     bool
	Scopes     []Scope
	Users      UserAccess
	UserField  string // with Users == UserField: request field (proto name)
	OwnerField string // with Users == UserOwner: response field, or "" if the handler checks; with UserSubjects: the repeated response field
}

// Shorthands for the table.
var (
	readAll  = []Scope{ScopeReadAll}
	adminAll = []Scope{ScopeAdmin}

	// backend: API keys with read:all only.
	backend = Rule{Scopes: readAll}
	// operator: API keys with admin only.
	operator = Rule{Scopes: adminAll}
	// usersOwnUserID: read:all, or the user named by the request's user_id.
	usersOwnUserID = Rule{Scopes: readAll, Users: UserField, UserField: "user_id"}
	// usersOwnReceipt: read:all, or the user the answered receipt belongs to.
	usersOwnReceipt = Rule{Scopes: readAll, Users: UserOwner, OwnerField: "user_id"}
	// usersOwnLoaded: read:all, or the owner the handler finds with
	// AuthorizeOwner.
	usersOwnLoaded = Rule{Scopes: readAll, Users: UserOwner}
	public         = Rule{Public: true}
	// feedSubscriber: the feed scope (or admin), or a user, who gets only
	// the events naming them.
	feedSubscriber = Rule{Scopes: []Scope{ScopeFeed, ScopeAdmin}, Users: UserSubjects, OwnerField: "user_ids"}
)

// rules is the one table of who may call what, keyed by full gRPC method
// name ("/receiptd.v1.ReceiptService/GetReceipt"). Both doors use it: gRPC
// directly, REST through the gateway, which calls the same gRPC server.
//
// An RPC with no row is refused to everyone (PERMISSION_DENIED, logged as an
// error): TestEveryRPCHasARule walks every method of every receiptd.v1
// service and fails on a missing row, and on a row naming no method.
//
// Adding an RPC? Add its row here in the same change.
var rules = map[string]Rule{
	// receiptd.v1.ReceiptService: backends read everything, a user reads
	// their own receipts, balance, ledger.
	receiptdv1.ReceiptService_GetReceipt_FullMethodName:        usersOwnReceipt,
	receiptdv1.ReceiptService_ListUserReceipts_FullMethodName:  usersOwnUserID,
	receiptdv1.ReceiptService_ListReceipts_FullMethodName:      backend, // a source's receipts across users: not a user's call
	receiptdv1.ReceiptService_GetBalance_FullMethodName:        usersOwnUserID,
	receiptdv1.ReceiptService_GetEntity_FullMethodName:         backend,
	receiptdv1.ReceiptService_ListEntities_FullMethodName:      backend,
	receiptdv1.ReceiptService_ListReceiptEvents_FullMethodName: usersOwnLoaded, // the handler calls AuthorizeOwner with the receipt's user
	receiptdv1.ReceiptService_ListUserLedger_FullMethodName:    usersOwnUserID,
	receiptdv1.ReceiptService_WatchReceipt_FullMethodName:      usersOwnReceipt,
	receiptdv1.ReceiptService_WatchUser_FullMethodName:         usersOwnUserID,

	// receiptd.v1.StatsService: pipeline statistics across users.
	receiptdv1.StatsService_GetStats_FullMethodName: backend,

	// receiptd.v1.AuditService: operations.
	receiptdv1.AuditService_Audit_FullMethodName:   operator,
	receiptdv1.AuditService_Rebuild_FullMethodName: operator,
	// The quarantine: raw bodies of any user's deliveries, and appends.
	receiptdv1.AuditService_ListQuarantined_FullMethodName:      operator,
	receiptdv1.AuditService_ReprocessQuarantined_FullMethodName: operator,
	// receiptd.v1.BackupService: a copy of the whole log, every user's
	// deliveries with their raw bodies.
	receiptdv1.BackupService_Backup_FullMethodName: operator,
	// receiptd.v1.PrivacyService: a person's erasure (irreversible) and
	// everything held about them, raw bodies included.
	receiptdv1.PrivacyService_ForgetSubject_FullMethodName: operator,
	receiptdv1.PrivacyService_ExportSubject_FullMethodName: operator,

	// receiptd.v1.FeedService: the feed, to downstream systems (scope
	// feed), operators, and users (their own events only); the push
	// destinations' state and control to operators.
	receiptdv1.FeedService_Subscribe_FullMethodName:            feedSubscriber,
	receiptdv1.FeedService_ListDestinations_FullMethodName:     operator,
	receiptdv1.FeedService_PauseDestination_FullMethodName:     operator,
	receiptdv1.FeedService_ResumeDestination_FullMethodName:    operator,
	receiptdv1.FeedService_RedeliverDestination_FullMethodName: operator,
	receiptdv1.FeedService_ListDeadLetters_FullMethodName:      operator,

	// grpc.health.v1: load balancers and orchestrators probe without
	// credentials; it tells only SERVING or not.
	healthpb.Health_Check_FullMethodName: public,
	healthpb.Health_List_FullMethodName:  public,
	healthpb.Health_Watch_FullMethodName: public,

	// Server reflection (grpcurl, consoles): backends and operators.
	reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      {Scopes: []Scope{ScopeReadAll, ScopeAdmin}},
	reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: {Scopes: []Scope{ScopeReadAll, ScopeAdmin}},
}

// Rules returns a copy of the rule table, for tests and documentation.
func Rules() map[string]Rule {
	out := make(map[string]Rule, len(rules))
	for m, r := range rules {
		r.Scopes = append([]Scope(nil), r.Scopes...)
		out[m] = r
	}
	return out
}
