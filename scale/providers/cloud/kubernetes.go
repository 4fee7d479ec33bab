//go:build !nok8s

package cloud

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/shoalmesh/shoal/fence"
	"github.com/shoalmesh/shoal/scale"
	"github.com/shoalmesh/shoal/scale/providers"
)

// The Kubernetes provider ("kubernetes") scales a Deployment or StatefulSet
// through its scale subresource (apps/v1 .../scale, get and update) and keeps
// its fencing term in annotations on the object, so it needs, in RBAC terms:
//
//	apps: deployments (or statefulsets): get, patch
//	apps: deployments/scale (or statefulsets/scale): get, update
//
// Fencing and optimistic concurrency: each Scale reads the object, admits
// the lease against the one recorded in its annotations (fence.Fence
// AdmitLease over KubernetesAnnotationTerm, ...Holder, ...Priority), then
//
//  1. if the lease is newer than the recorded one, patches the annotations
//     with the resourceVersion it read as a precondition,
//  2. updates the scale subresource with the resourceVersion it read (or
//     that the patch returned) as a precondition, and
//  3. records the action (KubernetesAnnotationLast, for LastAction), again
//     conditional on nothing having changed since step 2.
//
// Any write by anyone in between makes step 1 or 2 fail with a conflict; the
// provider then re-reads and decides again. A deposed coordinator's late
// call therefore either finds the newer lease in the annotations (refused,
// ErrStaleTerm) or loses the race on the resourceVersion. And two writers
// that computed a change from the same old count cannot both apply it: the
// scale.Decision carries the count it was computed from (scale.Decision.Current), and
// after a re-read that finds another count the provider returns
// providers.ErrScaleConflict instead of applying a stale change; the caller decides
// again from the new count (or passes a re-decide function to ScaleFunc).
//
// Client: the dynamic client (k8s.io/client-go/dynamic) on unstructured
// objects, not the typed clientset. k8s.io/client-go/kubernetes links and
// registers in init every API group Kubernetes has (its scheme), a cost
// every agent paid for a provider that only the elected coordinator calls:
// with it the binary was 70.9 MB and an idle agent 46 MB RSS, without it
// 40.4 MB and 33 MB (2026-11-27). The few fields read and written here
// (metadata, spec.replicas, the scale subresource's spec.replicas) are
// accessed as JSON; k8s.io/api/autoscaling/v1 is not used because it pulls
// in k8s.io/api/core/v1 (~3 MB of binary). Errors are the apiserver's
// Status as with any client-go client (apierrors.IsNotFound and friends
// work). Keep it that way: TestDeps (deps_test.go) fails if the typed clientset or
// core/v1 comes back into this package's imports.

// Annotations the Kubernetes provider keeps on the Deployment/StatefulSet.
const (
	KubernetesAnnotationTerm     = "shoal.io/term"
	KubernetesAnnotationHolder   = "shoal.io/holder"
	KubernetesAnnotationPriority = "shoal.io/priority"
	// KubernetesAnnotationLast is the last action: JSON of scale.Applied plus the
	// reason.
	KubernetesAnnotationLast = "shoal.io/last-action"
)

// KubernetesConfig configures a Kubernetes provider.
type KubernetesConfig struct {
	// Kind is "Deployment" or "StatefulSet" (case-insensitive; "deploy",
	// "sts" and the plurals are accepted).
	Kind string
	// Namespace of the object; empty: the kubeconfig context's namespace,
	// or in a cluster the pod's own namespace, or "default".
	Namespace string
	// Name of the object.
	Name string
	// Kubeconfig is a kubeconfig file's path; empty means the in-cluster
	// configuration (the pod's service account).
	Kubeconfig string
	// Context selects a kubeconfig context (empty: its current context).
	Context string
	// Timeout bounds each request to the apiserver (default 10s).
	Timeout time.Duration
	// ConflictRetries is how many times a write that met a conflict is
	// re-read and retried before providers.ErrScaleConflict (default 5).
	ConflictRetries int
	// Node is this agent's name, kept with the last action.
	Node string
	// Logger; nil discards. A component attribute is added.
	Logger *slog.Logger
	// REST, when set, is used instead of Kubeconfig/in-cluster (tests,
	// embedding).
	REST *rest.Config
}

// Kubernetes is the Kubernetes provider. It is safe for concurrent use.
type Kubernetes struct {
	cfg    KubernetesConfig
	kind   string // "Deployment" or "StatefulSet"
	client dynamic.Interface
	obj    kubeObject
	log    *slog.Logger
	// fence is the last lease this provider acted on, next to the one on
	// the object: the object's annotations can be edited by hand, this
	// cannot go backwards while the process lives.
	fence *fence.Fence
	mu    sync.Mutex // one Scale at a time from this process
	// testHook, when set, is called with "before-patch" and
	// "before-update-scale" (tests interleave other writers there).
	testHook func(stage string)
}

var (
	_ scale.Provider         = (*Kubernetes)(nil)
	_ scale.LastActionReader = (*Kubernetes)(nil)
	_ scale.ReadyReader      = (*Kubernetes)(nil)
)

func init() {
	factories[providers.KubernetesName] = newKubernetesProvider
}

// newKubernetesProvider is the registry's factory. Resource is
// "[namespace/]kind/name" (e.g. "shoal/deployment/web"); options:
// kubeconfig, context, timeout, conflict-retries.
func newKubernetesProvider(pc scale.ProviderConfig) (scale.Provider, error) {
	if err := pc.CheckOptions("kubeconfig", "context", "timeout", "conflict-retries"); err != nil {
		return nil, err
	}
	cfg := KubernetesConfig{
		Kubeconfig: pc.Opt("kubeconfig", ""),
		Context:    pc.Opt("context", ""),
		Node:       pc.Node,
		Logger:     pc.Logger,
	}
	parts := strings.Split(pc.Resource, "/")
	switch len(parts) {
	case 2:
		cfg.Kind, cfg.Name = parts[0], parts[1]
	case 3:
		cfg.Namespace, cfg.Kind, cfg.Name = parts[0], parts[1], parts[2]
	default:
		return nil, fmt.Errorf("%w: provider kubernetes: resource %q: want [namespace/]deployment/NAME or [namespace/]statefulset/NAME",
			scale.ErrProviderConfig, pc.Resource)
	}
	if v := pc.Opt("timeout", ""); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%w: provider kubernetes: timeout %q: want a positive duration such as 10s", scale.ErrProviderConfig, v)
		}
		cfg.Timeout = d
	}
	if v := pc.Opt("conflict-retries", ""); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: provider kubernetes: conflict-retries %q: want a count >= 0", scale.ErrProviderConfig, v)
		}
		cfg.ConflictRetries = n
	}
	return NewKubernetes(cfg)
}

// NewKubernetes checks cfg and builds the client; it does not reach the
// apiserver (Check does).
func NewKubernetes(cfg KubernetesConfig) (*Kubernetes, error) {
	kind, err := kubeKind(cfg.Kind)
	if err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		return nil, fmt.Errorf("%w: provider kubernetes: no %s name given", scale.ErrProviderConfig, kind)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.ConflictRetries == 0 {
		cfg.ConflictRetries = 5
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	restCfg := cfg.REST
	ns := cfg.Namespace
	if restCfg == nil {
		var cns string
		restCfg, cns, err = kubeRESTConfig(cfg.Kubeconfig, cfg.Context)
		if err != nil {
			return nil, err
		}
		if ns == "" {
			ns = cns
		}
	}
	if ns == "" {
		ns = "default"
	}
	cfg.Namespace = ns
	restCfg = rest.CopyConfig(restCfg)
	restCfg.Timeout = cfg.Timeout
	if restCfg.QPS == 0 {
		// client-go's default (5/s, burst 10) throttles a Scale's four
		// requests when conflicts make it retry.
		restCfg.QPS, restCfg.Burst = 50, 100
	}
	if restCfg.UserAgent == "" {
		restCfg.UserAgent = "shoal"
	}
	cs, err := dynamic.NewForConfig(restCfg)
	if err != nil {
		return nil, fmt.Errorf("%w: provider kubernetes: client for %s: %v", scale.ErrProviderConfig, restCfg.Host, err)
	}
	k := &Kubernetes{
		cfg:    cfg,
		kind:   kind,
		client: cs,
		log:    cfg.Logger.With("component", "scale.kubernetes", "object", kind+" "+ns+"/"+cfg.Name),
		fence:  fence.New(fence.Lease{}),
	}
	gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: strings.ToLower(kind) + "s"}
	k.obj = kubeObject{cs.Resource(gvr).Namespace(ns)}
	return k, nil
}

func kubeKind(s string) (string, error) {
	switch strings.ToLower(s) {
	case "deployment", "deployments", "deploy":
		return "Deployment", nil
	case "statefulset", "statefulsets", "sts":
		return "StatefulSet", nil
	}
	return "", fmt.Errorf("%w: provider kubernetes: kind %q: want Deployment or StatefulSet", scale.ErrProviderConfig, s)
}

const inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// kubeRESTConfig loads a kubeconfig (path != "") or the in-cluster config,
// and the namespace it names.
func kubeRESTConfig(path, context string) (*rest.Config, string, error) {
	if path == "" {
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, "", fmt.Errorf("%w: provider kubernetes: no kubeconfig given and not in a cluster (%v); pass kubeconfig=PATH",
				scale.ErrProviderConfig, err)
		}
		ns := ""
		if b, err := os.ReadFile(inClusterNamespaceFile); err == nil {
			ns = strings.TrimSpace(string(b))
		}
		return c, ns, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, "", fmt.Errorf("%w: provider kubernetes: kubeconfig %q: %v", scale.ErrProviderConfig, path, err)
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: path},
		&clientcmd.ConfigOverrides{CurrentContext: context})
	c, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("%w: provider kubernetes: kubeconfig %q: %v", scale.ErrProviderConfig, path, err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("%w: provider kubernetes: kubeconfig %q: namespace: %v", scale.ErrProviderConfig, path, err)
	}
	return c, ns, nil
}

// Name implements scale.Provider.
func (k *Kubernetes) Name() string { return "kubernetes" }

// Object names the scaled object: "Deployment default/web".
func (k *Kubernetes) Object() string {
	return k.kind + " " + k.cfg.Namespace + "/" + k.cfg.Name
}

// Authoritative is true: Current reads the scale subresource.
func (k *Kubernetes) Authoritative() bool { return true }

// Current returns spec.replicas from the scale subresource (the count asked
// for, as the HPA reads it; no controller needs to have acted on it).
func (k *Kubernetes) Current(ctx context.Context) (int, error) {
	n, err := k.obj.getScale(ctx, k.cfg.Name)
	if err != nil {
		return 0, k.wrap("get the scale of", err)
	}
	return n, nil
}

// Counts returns spec.replicas and, as the ready count,
// status.readyReplicas of the Deployment or StatefulSet (one read of the
// object, which the provider may already get): pods that pass their
// readiness probe, absent meaning none.
func (k *Kubernetes) Counts(ctx context.Context) (scale.Counts, error) {
	u, err := k.obj.c.Get(ctx, k.cfg.Name, metav1.GetOptions{})
	if err != nil {
		return scale.Counts{}, k.wrap("get", err)
	}
	n, err := replicasField(u, 1)
	if err != nil {
		return scale.Counts{}, err
	}
	c := scale.Counts{Current: n}
	ready, _, err := unstructured.NestedInt64(u.Object, "status", "readyReplicas")
	if err != nil {
		return scale.Counts{}, fmt.Errorf("the apiserver's %s: status.readyReplicas: %v", u.GetKind(), err)
	}
	if ready < 0 || ready > scale.MaxCount {
		return scale.Counts{}, fmt.Errorf("the apiserver's %s: status.readyReplicas %d", u.GetKind(), ready)
	}
	c.Ready, c.ReadyKnown = int(ready), true
	return c, nil
}

// Check reaches the apiserver at start-up: the object must exist and this
// identity must be allowed everything Scale does (SelfSubjectAccessReview).
// The error names the object and the missing permission.
func (k *Kubernetes) Check(ctx context.Context) error {
	if _, err := k.obj.getScale(ctx, k.cfg.Name); err != nil {
		return k.wrap("get the scale of", err)
	}
	res := strings.ToLower(k.kind) + "s"
	for _, c := range []struct{ verb, sub string }{{"get", ""}, {"patch", ""}, {"get", "scale"}, {"update", "scale"}} {
		r, err := k.reviewAccess(ctx, &authorizationv1.ResourceAttributes{
			Namespace: k.cfg.Namespace, Verb: c.verb, Group: "apps", Resource: res, Subresource: c.sub, Name: k.cfg.Name,
		})
		if err != nil {
			return k.wrap("review access to", err)
		}
		if !r.Status.Allowed {
			what := res
			if c.sub != "" {
				what += "/" + c.sub
			}
			why := ""
			if r.Status.Reason != "" {
				why = " (" + r.Status.Reason + ")"
			}
			return fmt.Errorf("scale: kubernetes: %s: forbidden: this identity may not %s apps %s%s; the agent's Role needs get, patch on %s and get, update on %s/scale",
				k.Object(), c.verb, what, why, res, res)
		}
	}
	return nil
}

var selfSubjectAccessReviews = schema.GroupVersionResource{Group: "authorization.k8s.io", Version: "v1", Resource: "selfsubjectaccessreviews"}

// reviewAccess creates a SelfSubjectAccessReview for attrs and returns the
// apiserver's answer. (k8s.io/api/authorization/v1 is a leaf package: its
// types cost little, unlike the clientset that would send them.)
func (k *Kubernetes) reviewAccess(ctx context.Context, attrs *authorizationv1.ResourceAttributes) (*authorizationv1.SelfSubjectAccessReview, error) {
	body, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&authorizationv1.SelfSubjectAccessReview{
		TypeMeta: metav1.TypeMeta{APIVersion: authorizationv1.SchemeGroupVersion.String(), Kind: "SelfSubjectAccessReview"},
		Spec:     authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attrs},
	})
	if err != nil {
		return nil, err
	}
	out, err := k.client.Resource(selfSubjectAccessReviews).Create(ctx, &unstructured.Unstructured{Object: body}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	var r authorizationv1.SelfSubjectAccessReview
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(out.Object, &r); err != nil {
		return nil, fmt.Errorf("the apiserver's SelfSubjectAccessReview: %v", err)
	}
	return &r, nil
}

// Scale implements Provider: it sets the replicas to desired under lease.
// d.Current is taken as the count the decision was computed from: if the
// object holds another count, nothing is written and the error wraps
// providers.ErrScaleConflict (decide again). A zero scale.Decision (Action "") skips that
// check. A lease lower than the one on the object, or than the last one
// this provider acted on, is refused with an error wrapping
// fence.ErrStaleTerm.
func (k *Kubernetes) Scale(ctx context.Context, desired int, lease fence.Lease, d scale.Decision) error {
	basis, haveBasis := d.Current, d.Action != ""
	return k.ScaleFunc(ctx, lease, d.Reason(), func(current int) (int, error) {
		if haveBasis && current != basis {
			return 0, fmt.Errorf("%w: %s has %d replicas, the decision (to %d) was computed from %d",
				providers.ErrScaleConflict, k.Object(), current, desired, basis)
		}
		return desired, nil
	})
}

// ScaleFunc is Scale with the decision in the provider's hands: decide is
// called with the count read from the object, before the first attempt and
// again after every conflict, and returns the count to set (or an error,
// returned as is). reason is kept in the last-action annotation.
func (k *Kubernetes) ScaleFunc(ctx context.Context, lease fence.Lease, reason string, decide func(current int) (int, error)) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.fence.AdmitLease(lease); err != nil {
		return fmt.Errorf("scale: kubernetes: %s: refused: %w", k.Object(), err)
	}
	var lastErr error
	for attempt := 0; attempt <= k.cfg.ConflictRetries; attempt++ {
		if attempt > 0 {
			k.log.Debug("conflict; re-reading and deciding again", "attempt", attempt, "err", lastErr)
			// Jittered, so that writers who met each other spread out.
			if err := sleepCtx(ctx, rand.N(time.Duration(attempt)*20*time.Millisecond)); err != nil {
				return err
			}
		}
		err := k.scaleOnce(ctx, lease, reason, decide)
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) {
			return err
		}
		lastErr = err
	}
	return fmt.Errorf("%w: %s: still conflicting after %d attempts: %v", providers.ErrScaleConflict, k.Object(), k.cfg.ConflictRetries+1, lastErr)
}

// scaleOnce is one read-decide-write round. A returned error for which
// apierrors.IsConflict holds means: re-read and try again.
func (k *Kubernetes) scaleOnce(ctx context.Context, lease fence.Lease, reason string, decide func(int) (int, error)) error {
	meta, replicas, err := k.obj.get(ctx, k.cfg.Name)
	if err != nil {
		return k.wrap("get", err)
	}
	onObject, err := leaseFromAnnotations(meta.Annotations)
	if err != nil {
		return fmt.Errorf("scale: kubernetes: %s: %w", k.Object(), err)
	}
	if err := fence.New(onObject).AdmitLease(lease); err != nil {
		return fmt.Errorf("scale: kubernetes: %s: refused (annotation %s=%d): %w", k.Object(), KubernetesAnnotationTerm, onObject.Term, err)
	}
	desired, err := decide(replicas)
	if err != nil {
		return err
	}
	if desired < 0 {
		return fmt.Errorf("scale: kubernetes: %s: desired count %d is negative", k.Object(), desired)
	}
	if desired == replicas && onObject == lease {
		return nil // nothing to change, nothing to record
	}

	// 1. A newer lease goes on the object first, conditional on what we
	// read: from then on a lower one is refused by everyone.
	rv := meta.ResourceVersion
	if onObject != lease {
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": rv, // the precondition
			"annotations": map[string]string{
				KubernetesAnnotationTerm:     strconv.FormatUint(lease.Term, 10),
				KubernetesAnnotationHolder:   lease.Holder,
				KubernetesAnnotationPriority: strconv.Itoa(lease.Priority),
			},
		}})
		if err != nil {
			return err
		}
		if k.testHook != nil {
			k.testHook("before-patch")
		}
		if rv, err = k.obj.patch(ctx, k.cfg.Name, patch); err != nil {
			return k.wrap("record the lease on", err)
		}
	}
	if desired == replicas {
		return nil
	}

	// 2. The count, conditional on nothing having changed since the read
	// (or since step 1).
	if k.testHook != nil {
		k.testHook("before-update-scale")
	}
	outRV, err := k.obj.updateScale(ctx, k.cfg.Name, k.cfg.Namespace, rv, desired)
	if err != nil {
		return k.wrap("update the scale of", err)
	}
	k.log.Info("scaled", "from", replicas, "to", desired, "term", lease.Term, "holder", lease.Holder)

	// 3. The action, for a coordinator that takes over (LastAction). Only
	// if nothing changed since step 2: a later writer's record wins. The
	// scale has happened either way, so this step's failure is logged,
	// not returned.
	last, err := json.Marshal(kubeLastAction{
		Applied: scale.Applied{Time: time.Now().UTC().Truncate(time.Millisecond), From: replicas, To: desired, Lease: lease},
		Node:    k.cfg.Node,
		Reason:  truncateReason(reason, 512),
	})
	if err != nil {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": outRV,
		"annotations":     map[string]string{KubernetesAnnotationLast: string(last)},
	}})
	if err == nil {
		_, err = k.obj.patch(ctx, k.cfg.Name, patch)
	}
	if err != nil {
		k.log.Warn("scaled, but could not record the action on the object", "err", k.wrap("record the action on", err))
	}
	return nil
}

// LastAction implements LastActionReader: the last action recorded on the
// object's annotations.
func (k *Kubernetes) LastAction(ctx context.Context) (scale.Applied, bool, error) {
	meta, _, err := k.obj.get(ctx, k.cfg.Name)
	if err != nil {
		return scale.Applied{}, false, k.wrap("get", err)
	}
	v, ok := meta.Annotations[KubernetesAnnotationLast]
	if !ok {
		return scale.Applied{}, false, nil
	}
	var last kubeLastAction
	if err := json.Unmarshal([]byte(v), &last); err != nil {
		return scale.Applied{}, false, fmt.Errorf("scale: kubernetes: %s: annotation %s is not valid JSON: %v", k.Object(), KubernetesAnnotationLast, err)
	}
	return last.Applied, true, nil
}

// Lease returns the lease recorded on the object (zero if none).
func (k *Kubernetes) Lease(ctx context.Context) (fence.Lease, error) {
	meta, _, err := k.obj.get(ctx, k.cfg.Name)
	if err != nil {
		return fence.Lease{}, k.wrap("get", err)
	}
	l, err := leaseFromAnnotations(meta.Annotations)
	if err != nil {
		return l, fmt.Errorf("scale: kubernetes: %s: %w", k.Object(), err)
	}
	return l, nil
}

type kubeLastAction struct {
	scale.Applied
	Node   string `json:"node,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func leaseFromAnnotations(a map[string]string) (fence.Lease, error) {
	var l fence.Lease
	if v, ok := a[KubernetesAnnotationTerm]; ok {
		t, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			// Refuse rather than guess: a bad term could let a deposed
			// coordinator act.
			return l, fmt.Errorf("annotation %s=%q is not a term number; fix or remove it by hand", KubernetesAnnotationTerm, v)
		}
		l.Term = t
	}
	l.Holder = a[KubernetesAnnotationHolder]
	if v, ok := a[KubernetesAnnotationPriority]; ok {
		p, err := strconv.Atoi(v)
		if err != nil {
			return l, fmt.Errorf("annotation %s=%q is not a number; fix or remove it by hand", KubernetesAnnotationPriority, v)
		}
		l.Priority = p
	}
	return l, nil
}

// wrap turns an apiserver error into one that names the object and says
// what to do. The apiserver's error stays wrapped (apierrors.IsNotFound and
// friends still work).
func (k *Kubernetes) wrap(what string, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("scale: kubernetes: %s not found (while trying to %s it): check the namespace and name: %w", k.Object(), what, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("scale: kubernetes: forbidden to %s %s: the agent's Role needs get, patch on %ss and get, update on %ss/scale (apps): %w",
			what, k.Object(), strings.ToLower(k.kind), strings.ToLower(k.kind), err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("scale: kubernetes: unauthorized to %s %s: the kubeconfig's or service account's credentials were rejected: %w", what, k.Object(), err)
	case apierrors.IsConflict(err):
		return fmt.Errorf("scale: kubernetes: %s changed while trying to %s it: %w", k.Object(), what, err)
	}
	return fmt.Errorf("scale: kubernetes: %s %s: %w", what, k.Object(), err)
}

func truncateReason(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// kubeObject is the Deployment or StatefulSet, through the dynamic client
// (the two differ only in their resource name).
type kubeObject struct {
	c dynamic.ResourceInterface
}

// get returns the object's metadata (annotations, resourceVersion) and its
// spec.replicas.
func (o kubeObject) get(ctx context.Context, name string) (metav1.ObjectMeta, int, error) {
	u, err := o.c.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return metav1.ObjectMeta{}, 0, err
	}
	meta := metav1.ObjectMeta{
		Name: u.GetName(), Namespace: u.GetNamespace(), ResourceVersion: u.GetResourceVersion(), Annotations: u.GetAnnotations(),
	}
	// The apiserver defaults spec.replicas to 1: absent means 1.
	n, err := replicasField(u, 1)
	if err != nil {
		return metav1.ObjectMeta{}, 0, err
	}
	return meta, n, nil
}

func (o kubeObject) patch(ctx context.Context, name string, p []byte) (string, error) {
	u, err := o.c.Patch(ctx, name, types.MergePatchType, p, metav1.PatchOptions{FieldManager: "shoal"})
	if err != nil {
		return "", err
	}
	return u.GetResourceVersion(), nil
}

// getScale returns the scale subresource's spec.replicas.
func (o kubeObject) getScale(ctx context.Context, name string) (int, error) {
	u, err := o.c.Get(ctx, name, metav1.GetOptions{}, "scale")
	if err != nil {
		return 0, err
	}
	// autoscaling/v1 ScaleSpec.Replicas is an int32 with omitempty: absent
	// means 0.
	return replicasField(u, 0)
}

// updateScale sets the scale subresource's spec.replicas, conditional on
// resourceVersion, and returns the resourceVersion after the write.
func (o kubeObject) updateScale(ctx context.Context, name, namespace, resourceVersion string, replicas int) (string, error) {
	s := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "autoscaling/v1",
		"kind":       "Scale",
		"metadata": map[string]any{
			"name":            name,
			"namespace":       namespace,
			"resourceVersion": resourceVersion,
		},
		"spec": map[string]any{"replicas": int64(replicas)},
	}}
	u, err := o.c.Update(ctx, s, metav1.UpdateOptions{FieldManager: "shoal"}, "scale")
	if err != nil {
		return "", err
	}
	return u.GetResourceVersion(), nil
}

// replicasField reads spec.replicas of u (def if absent).
func replicasField(u *unstructured.Unstructured, def int) (int, error) {
	n, found, err := unstructured.NestedInt64(u.Object, "spec", "replicas")
	if err != nil {
		return 0, fmt.Errorf("the apiserver's %s: %v", u.GetKind(), err)
	}
	if !found {
		return def, nil
	}
	return int(n), nil
}
