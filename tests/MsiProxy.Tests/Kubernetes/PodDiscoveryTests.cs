using System.Net;
using MsiProxy.Clients;
using static MsiProxy.Tests.Kubernetes.KubernetesTestBed;

namespace MsiProxy.Tests.Kubernetes;

public sealed class PodDiscoveryTests
{
    private static readonly Dictionary<string, string> Worker = new() { ["app"] = "worker" };

    [Fact]
    public async Task The_initial_list_registers_bound_pods_of_this_node_only_and_an_unbound_pod_is_refused()
    {
        var api = PodJson.Create("team-a", "api-0", "api", "127.0.0.2");
        var unbound = PodJson.Create("team-c", "other-0", "other", "127.0.0.3");
        var elsewhere = PodJson.Create("team-a", "api-1", "api", "127.0.0.4", node: "node-2");
        var host = PodJson.Create("team-a", "api-host", "api", ip: null, hostNetwork: true);
        await using var bed = await StartAsync(DefaultBindings, api, unbound, elsewhere, host);

        await Eventually(() => bed.RegistrationOf(api) is not null, what: "the bound pod is registered");
        var registration = bed.RegistrationOf(api)!;
        Assert.Equal("team-a/api-0", registration.Name);
        Assert.Equal(RegistrationSources.Kubernetes, registration.Source);
        Assert.Equal(IPAddress.Parse("127.0.0.2"), registration.Address.Network);
        Assert.True(registration.Ready);
        Assert.Single(bed.Registry.All);

        Assert.Equal(HttpStatusCode.OK, await bed.TokenStatusAsync("127.0.0.2"));
        Assert.Equal(HttpStatusCode.OK, await bed.TokenStatusAsync("127.0.0.2", IdentityA));
        Assert.Equal(HttpStatusCode.BadRequest, await bed.TokenStatusAsync("127.0.0.2", IdentityB)); // IMDS's "Identity not found"
        Assert.Equal(HttpStatusCode.Forbidden, await bed.TokenStatusAsync("127.0.0.3"));
        Assert.Equal(HttpStatusCode.Forbidden, await bed.TokenStatusAsync("127.0.0.4"));
        Assert.Null(bed.RegistrationOf(host));

        // The wire: a node-filtered list, then a bookmark-enabled watch from exactly the list's resourceVersion.
        var requests = bed.Api.Requests.ToArray();
        Assert.Contains("fieldSelector=spec.nodeName%3Dnode-1", requests[0], StringComparison.Ordinal);
        Assert.DoesNotContain("watch=true", requests[0], StringComparison.Ordinal);
        await Eventually(() => bed.Api.Watches >= 1, what: "the watch starts");
        var watch = bed.Api.Requests.First(r => r.Contains("watch=true", StringComparison.Ordinal));
        Assert.Contains("allowWatchBookmarks=true", watch, StringComparison.Ordinal);
        Assert.Contains("resourceVersion=4812304", watch, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Watch_events_follow_a_pod_from_pending_to_running_through_an_ip_change_to_deletion()
    {
        await using var bed = await StartAsync();
        await Eventually(() => bed.Api.Watches >= 1, what: "the watch starts");

        var pod = PodJson.Create("team-a", "api-0", "api", ip: null, phase: "Pending");
        bed.Api.Add(pod);
        PodJson.SetIp(pod, "127.0.0.5");
        bed.Api.Modify(pod);
        await Eventually(() => bed.RegistrationOf(pod) is not null, what: "the pod with an IP is registered");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, await bed.TokenStatusAsync("127.0.0.5")); // not Running yet: retry

        bed.Api.Modify(PodJson.SetPhase(pod, "Running"));
        await Eventually(() => bed.RegistrationOf(pod)?.Ready == true, what: "the running pod is ready");
        Assert.Equal(HttpStatusCode.OK, await bed.TokenStatusAsync("127.0.0.5"));

        bed.Api.Modify(PodJson.SetIp(pod, "127.0.0.6"));
        await Eventually(() => bed.RegistrationOf(pod)?.Address.Network.Equals(IPAddress.Parse("127.0.0.6")) == true, what: "the new IP is registered");
        Assert.Equal(HttpStatusCode.Forbidden, await bed.TokenStatusAsync("127.0.0.5"));
        Assert.Equal(HttpStatusCode.OK, await bed.TokenStatusAsync("127.0.0.6"));

        bed.Api.Delete(pod);
        await Eventually(() => bed.RegistrationOf(pod) is null, what: "the deleted pod is deregistered");
        Assert.Equal(HttpStatusCode.Forbidden, await bed.TokenStatusAsync("127.0.0.6"));
        Assert.Empty(bed.Registry.All);
    }

    [Fact]
    public async Task A_finished_pod_is_deregistered_even_before_it_is_deleted()
    {
        var job = PodJson.Create("team-a", "job-0", "api", "127.0.0.12");
        await using var bed = await StartAsync(DefaultBindings, job);
        await Eventually(() => bed.RegistrationOf(job) is not null, what: "the job pod is registered");

        bed.Api.Modify(PodJson.SetPhase(job, "Succeeded"));
        await Eventually(() => bed.RegistrationOf(job) is null, what: "the finished pod is deregistered");
        Assert.Equal(HttpStatusCode.Forbidden, await bed.TokenStatusAsync("127.0.0.12"));
    }

    [Fact]
    public async Task A_dropped_watch_resumes_from_the_last_bookmark_and_a_410_forces_a_relist_that_catches_missed_changes()
    {
        var first = PodJson.Create("team-a", "api-0", "api", "127.0.0.2");
        await using var bed = await StartAsync(DefaultBindings, first);
        await Eventually(() => bed.Api.Watches >= 1, what: "the watch starts");
        Assert.Equal(1, bed.Api.Lists);

        // Drop: the proxy reconnects from the bookmark's version without relisting. The test cannot see when the proxy
        // has read the bookmark, so a drop may overtake it (the proxy then rightly resumes from the version before);
        // bookmarks are not replayed, so each try sends a fresh one. At most a few tries.
        var resumedFromBookmark = false;
        for (var attempt = 0; attempt < 10 && !resumedFromBookmark; attempt++)
        {
            var bookmark = bed.Api.Bookmark();
            var watchesBefore = bed.Api.Watches;
            await Task.Delay(200);
            bed.Api.DropWatches();
            await Eventually(() => bed.Api.Watches > watchesBefore, what: "the watch reconnects");
            resumedFromBookmark = bed.Api.Requests.Last(r => r.Contains("watch=true", StringComparison.Ordinal))
                .Contains($"resourceVersion={bookmark}", StringComparison.Ordinal);
        }

        Assert.True(resumedFromBookmark, "the watch never resumed from a bookmark's resourceVersion");
        Assert.Equal(1, bed.Api.Lists);
        var second = PodJson.Create("team-a", "api-1", "api", "127.0.0.3");
        bed.Api.Add(second);
        await Eventually(() => bed.RegistrationOf(second) is not null, what: "events flow on the new watch");

        // HTTP 410 on the re-watch: relist. A deletion the proxy never saw is caught by the relist.
        var watchesBefore410 = bed.Api.Watches;
        bed.Api.Silently(() => bed.Api.Delete(first));
        bed.Api.ExpireHistory();
        bed.Api.DropWatches();
        await Eventually(() => bed.Api.Lists >= 2, what: "the 410 forces a relist");
        await Eventually(() => bed.RegistrationOf(first) is null, what: "the relist removes the pod deleted while unseen");
        Assert.Equal(HttpStatusCode.Forbidden, await bed.TokenStatusAsync("127.0.0.2"));

        // An ERROR event with a 410 Status on a live watch: relist as well.
        await Eventually(() => bed.Api.Watches >= watchesBefore410 + 2, what: "the watch after the relist starts");
        var third = PodJson.Create("team-a", "api-2", "api", "127.0.0.4");
        bed.Api.Silently(() => bed.Api.Add(third));
        bed.Api.SendExpiredError();
        await Eventually(() => bed.Api.Lists >= 3, what: "the ERROR event forces a relist");
        await Eventually(() => bed.RegistrationOf(third) is not null, what: "the relist registers the pod added while unseen");
        Assert.Equal(HttpStatusCode.OK, await bed.TokenStatusAsync("127.0.0.4"));
        Assert.Equal(HttpStatusCode.OK, await bed.TokenStatusAsync("127.0.0.3"));
    }

    [Fact]
    public async Task Reloaded_bindings_re_evaluate_every_pod_and_a_pod_selector_only_narrows()
    {
        var labelled = PodJson.Create("team-b", "worker-0", "worker", "127.0.0.7", labels: Worker);
        var unlabelled = PodJson.Create("team-b", "worker-1", "worker", "127.0.0.8");
        await using var bed = await StartAsync(DefaultBindings, labelled, unlabelled);
        await Eventually(() => bed.RegistrationOf(labelled) is not null, what: "the labelled worker is registered");
        Assert.Equal(HttpStatusCode.OK, await bed.TokenStatusAsync("127.0.0.7", IdentityB));
        Assert.Equal(HttpStatusCode.Forbidden, await bed.TokenStatusAsync("127.0.0.8", IdentityB));

        bed.WriteBindings($$"""
            bindings:
              - namespace: team-b
                serviceAccount: worker
                identities: ["client_id={{IdentityA}}"]
            """);
        await Eventually(() => bed.RegistrationOf(unlabelled) is not null, what: "the widened binding registers the unlabelled worker");
        Assert.Equal(HttpStatusCode.OK, await bed.TokenStatusAsync("127.0.0.8", IdentityA));
        Assert.Equal(HttpStatusCode.BadRequest, await bed.TokenStatusAsync("127.0.0.7", IdentityB));
        Assert.Equal(HttpStatusCode.OK, await bed.TokenStatusAsync("127.0.0.7", IdentityA));

        // A broken edit keeps the last good bindings; removing the binding revokes at once.
        bed.WriteBindings("bindings:\n  - namespace: team-b\n    serviceAcount: worker\n");
        await Eventually(() => bed.Proxy.Logs.Events.Any(e => e.Message.Contains("serviceAcount", StringComparison.Ordinal)), what: "the typo is reported");
        Assert.Equal(HttpStatusCode.OK, await bed.TokenStatusAsync("127.0.0.8", IdentityA));

        bed.WriteBindings("bindings: []\n");
        await Eventually(() => bed.Registry.All.Count == 0, what: "no binding, no registration");
        Assert.Equal(HttpStatusCode.Forbidden, await bed.TokenStatusAsync("127.0.0.7"));
    }

    [Fact]
    public async Task Labels_and_annotations_cannot_claim_an_identity()
    {
        var claims = new Dictionary<string, string>
        {
            ["msi-proxy.client"] = "true",
            ["msi-proxy.identities"] = $"client_id={IdentityA}",
            ["azure.workload.identity/client-id"] = IdentityA,
            ["aadpodidbinding"] = "team-a",
        };
        var intruder = PodJson.Create("team-c", "intruder", "default", "127.0.0.9",
            labels: new Dictionary<string, string> { ["app"] = "api", ["msi-proxy.client"] = "true" }, annotations: claims);
        var greedy = PodJson.Create("team-a", "api-0", "api", "127.0.0.10",
            annotations: new Dictionary<string, string> { ["msi-proxy.identities"] = $"client_id={IdentityB}" });
        await using var bed = await StartAsync(DefaultBindings, intruder, greedy);
        await Eventually(() => bed.RegistrationOf(greedy) is not null, what: "the bound pod is registered");

        Assert.Null(bed.RegistrationOf(intruder));
        Assert.Equal(HttpStatusCode.Forbidden, await bed.TokenStatusAsync("127.0.0.9", IdentityA));
        Assert.Equal(HttpStatusCode.BadRequest, await bed.TokenStatusAsync("127.0.0.10", IdentityB));
        Assert.Equal(HttpStatusCode.OK, await bed.TokenStatusAsync("127.0.0.10", IdentityA));
        Assert.DoesNotContain(bed.Emulator.State.Requests, r => r.Query.Contains(IdentityB, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_new_pod_reusing_an_ip_gets_nothing_of_the_old_pod_and_late_events_for_the_old_pod_change_nothing()
    {
        var old = PodJson.Create("team-a", "api-0", "api", "127.0.0.11");
        await using var bed = await StartAsync(DefaultBindings, old);
        await Eventually(() => bed.RegistrationOf(old) is not null, what: "the old pod is registered");
        Assert.Equal(HttpStatusCode.OK, await bed.TokenStatusAsync("127.0.0.11"));

        // An unbound pod gets the IP before the old pod's DELETED arrives: it must not inherit the old identity.
        var stranger = PodJson.Create("team-c", "other-0", "other", "127.0.0.11");
        bed.Api.Add(stranger);
        await Eventually(() => bed.RegistrationOf(old) is null, what: "the old pod's registration goes with its IP");
        Assert.Equal(HttpStatusCode.Forbidden, await bed.TokenStatusAsync("127.0.0.11"));

        // Same with a bound pod, and the old pod's late DELETED (and a late MODIFIED) must leave the new owner alone.
        bed.Api.Delete(stranger);
        var heir = PodJson.Create("team-b", "worker-0", "worker", "127.0.0.11", labels: Worker);
        bed.Api.Add(heir);
        await Eventually(() => bed.RegistrationOf(heir) is not null, what: "the new pod is registered");
        bed.Api.Modify(PodJson.SetPhase(old, "Failed"));
        bed.Api.Delete(old);
        var marker = PodJson.Create("team-a", "marker", "api", "127.0.0.13");
        bed.Api.Add(marker);
        await Eventually(() => bed.RegistrationOf(marker) is not null, what: "the events after the late ones are processed");

        Assert.NotNull(bed.RegistrationOf(heir));
        Assert.Equal(HttpStatusCode.OK, await bed.TokenStatusAsync("127.0.0.11", IdentityB));
        Assert.Equal(HttpStatusCode.BadRequest, await bed.TokenStatusAsync("127.0.0.11", IdentityA));
    }

    [Fact]
    public async Task A_host_network_pod_is_never_registered_by_ip()
    {
        var host = PodJson.Create("team-a", "agent", "api", ip: null, hostNetwork: true);
        var marker = PodJson.Create("team-a", "marker", "api", "127.0.0.13");
        await using var bed = await StartAsync(DefaultBindings, host, marker);
        await Eventually(() => bed.RegistrationOf(marker) is not null, what: "the list is processed");
        bed.Api.Modify(host);
        bed.Api.Add(PodJson.Create("team-a", "marker-2", "api", "127.0.0.14"));
        await Eventually(() => bed.Registry.All.Count == 2, what: "the watch is processed");
        Assert.Null(bed.RegistrationOf(host));
        Assert.DoesNotContain(bed.Registry.All, r => r.Address.Network.Equals(IPAddress.Parse("10.224.0.4")));
    }
}
