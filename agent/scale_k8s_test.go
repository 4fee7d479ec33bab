//go:build !nok8s

package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/shoalmesh/shoal/internal/k8stest"
	"github.com/shoalmesh/shoal/internal/testbin"
	"github.com/shoalmesh/shoal/scale"
	"github.com/shoalmesh/shoal/scale/providers"
)

// useProviderHelper builds the helper the Kubernetes provider runs in
// (cmd/shoal-provider) and points the agents of this test at it.
func useProviderHelper(t *testing.T) {
	t.Helper()
	t.Setenv(providers.HelperEnv, testbin.Build(t, testbin.Provider))
}

// TestScaleKubernetesMesh: three agents and a real kube-apiserver. Synthetic
// load crosses the target; the coordinator scales the Deployment up through
// the scale subresource; the coordinator is killed mid-way and the new one
// neither repeats the step nor reverses it inside the cooldowns; once the
// down cooldown has passed, it scales the Deployment down.
func TestScaleKubernetesMesh(t *testing.T) {
	cluster := k8stest.Start(t, k8stest.Options{})
	useProviderHelper(t)
	rc, err := clientcmd.BuildConfigFromFlags("", cluster.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(rc)
	ctx := context.Background()
	three := int32(3)
	_, err = cs.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &three,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.invalid/web:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No kubelet or controller here: the 3 pods' readiness is set by hand
	// (the provider reports status.readyReplicas; with none ready the
	// policy would hold, the load figures describing no serving instance).
	setReady := func(n int32) {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Status.Replicas, d.Status.ReadyReplicas = n, n
		if _, err := cs.AppsV1().Deployments("default").UpdateStatus(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setReady(3)
	replicas := func() int {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return int(*d.Spec.Replicas)
	}

	as := startElectionMesh(t, 3, 230, scaleOpts(func(s *ScaleConfig) {
		s.Provider = "kubernetes"
		s.Resource = "default/deployment/web"
		s.Options = map[string]string{"kubeconfig": cluster.AdminKubeconfig}
		s.Min = 1
		s.UpCooldown = Duration(20 * time.Second)
		s.DownCooldown = Duration(20 * time.Second)
	}))
	setLoad(as, 91) // ceil(3 × 91/70) = 4
	pollFor(t, 30*time.Second, "the Deployment scaled to 4", func() error {
		if n := replicas(); n != 4 {
			return fmt.Errorf("replicas %d", n)
		}
		return nil
	})
	top := as[2]
	// The record is written after the provider's call returns: the
	// Deployment can show 4 before the history does.
	var up []scale.Record
	pollFor(t, 10*time.Second, "the step up in the coordinator's history", func() error {
		if up = records(top, scale.OutcomeApplied); len(up) == 0 {
			return fmt.Errorf("no applied record yet")
		}
		return nil
	})
	if len(up) != 1 || up[0].Lease.Holder != top.cfg.NodeName || up[0].Decision.Desired != 4 {
		t.Fatalf("applied on the coordinator: %+v", up)
	}
	actedAt := time.Now()

	// Kill the coordinator mid-way and drop the load: the new coordinator
	// must hold back (down cooldown), neither repeating the +1 nor undoing it.
	top.Stop(false)
	rest := as[:2]
	setLoad(rest, 20)
	pollFor(t, 20*time.Second, "el-2 acts and holds back for the down cooldown", func() error {
		s := rest[1].scale.statusView()
		if !s.Acting {
			return fmt.Errorf("el-2 not acting: %+v", s.Reasons)
		}
		if n := replicas(); n != 4 {
			t.Fatalf("replicas changed to %d %v after the action, inside the cooldown", n, time.Since(actedAt))
		}
		for _, r := range s.Reasons {
			if strings.Contains(r, "cooldown") {
				return nil
			}
		}
		return fmt.Errorf("reasons %v", s.Reasons)
	})
	if time.Since(actedAt) < 20*time.Second {
		if n := replicas(); n != 4 {
			t.Fatalf("replicas %d inside the cooldown", n)
		}
	}
	// After the down cooldown the new coordinator scales down, under its term.
	pollFor(t, 60*time.Second, "the Deployment scaled down after the cooldown", func() error {
		if n := replicas(); n >= 4 {
			return fmt.Errorf("replicas %d", n)
		}
		return nil
	})
	// Exactly one step down, by whichever survivor coordinates, under a
	// term above the first coordinator's.
	var down []scale.Record
	pollFor(t, 10*time.Second, "the step down in a survivor's history", func() error {
		down = append(records(rest[0], scale.OutcomeApplied), records(rest[1], scale.OutcomeApplied)...)
		if len(down) == 0 {
			return fmt.Errorf("no applied record yet")
		}
		return nil
	})
	if len(down) != 1 || down[0].Lease.Term <= up[0].Lease.Term || down[0].Decision.Desired >= 4 {
		t.Fatalf("applied on the survivors: %+v (up was term %d)", down, up[0].Lease.Term)
	}
	if down[0].Time.Sub(up[0].Time) < 20*time.Second {
		t.Fatalf("scaled down %v after the up step, inside the 20s cooldown", down[0].Time.Sub(up[0].Time))
	}
}
