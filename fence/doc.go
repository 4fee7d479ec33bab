// Package fence is the token a coordinator acts under (Lease: holder, rank
// and term) and the check on the receiving side that refuses a deposed
// coordinator's late action (Fence). It imports only the standard library.
//
// The election (package election) hands out Leases; scaling providers
// (package scale and scale/providers) and anything else acting outside the
// mesh fence them. Both import this package, so neither the scale policy nor
// a provider written in Go needs the election's machinery to check a term:
//
//	f := fence.New(lastPersisted)         // what Last returned before a restart
//	if err := f.AdmitLease(lease); err != nil { // errors.Is(err, fence.ErrStaleTerm)
//		return err                          // a deposed coordinator
//	}
//	persist(f.Last())
//
// Why a full term: see the election package doc ("Terms and fencing").
package fence
