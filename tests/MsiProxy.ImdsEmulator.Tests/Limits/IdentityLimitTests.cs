using System.Net;
using Microsoft.Extensions.Time.Testing;
using MsiProxy.Testing.Emulator;

namespace MsiProxy.ImdsEmulator.Tests.Limits;

public sealed class IdentityLimitTests : EmulatorTestBase
{
    // Frozen time: every request lands inside the same one-second window, however slow the machine is.
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-26T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    protected override TimeProvider Time => _time;

    [Fact]
    public async Task Sixth_concurrent_identity_request_gets_429()
    {
        State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Stall = true, Times = 6 });
        using var cancelStalled = new CancellationTokenSource();
        var stalled = Enumerable.Range(0, 5)
            .Select(_ => Client.SendAsync(ImdsRequests.Token("https://management.azure.com/"), cancelStalled.Token))
            .ToList();
        await Eventually(() => State.Counters.CurrentConcurrency == 5);

        using var sixth = await Client.SendAsync(ImdsRequests.Token("https://management.azure.com/"));
        var body = await ImdsRequests.ReadJsonAsync(sixth);

        Assert.Equal((HttpStatusCode)429, sixth.StatusCode);
        Assert.Equal("too_many_requests", body.GetProperty("error").GetString());
        Assert.Equal(1, State.Counters.Throttled);
        Assert.Equal(6, State.Counters.MaxConcurrency);
        Assert.Equal(6, State.Requests[^1].ConcurrencyAtArrival);

        await cancelStalled.CancelAsync();
        foreach (var request in stalled)
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
        }

        // The stalled rule still has one use left (the 6th never reached it); the slots are free again.
        await Eventually(() => State.Counters.CurrentConcurrency == 0);
        State.Faults.Clear();
        using var after = await Client.SendAsync(ImdsRequests.Token("https://management.azure.com/"));
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }

    [Fact]
    public async Task Twenty_first_request_within_a_second_gets_429_and_the_window_slides()
    {
        for (var i = 0; i < 20; i++)
        {
            using var ok = await Client.SendAsync(ImdsRequests.Token("https://management.azure.com/"));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        using var throttled = await Client.SendAsync(ImdsRequests.Token("https://management.azure.com/"));
        Assert.Equal((HttpStatusCode)429, throttled.StatusCode);

        _time.Advance(TimeSpan.FromSeconds(1));
        using var later = await Client.SendAsync(ImdsRequests.Token("https://management.azure.com/"));
        Assert.Equal(HttpStatusCode.OK, later.StatusCode);
        Assert.Equal(1, State.Counters.Throttled);
    }

    [Fact]
    public async Task Instance_endpoints_are_not_subject_to_the_identity_limit()
    {
        for (var i = 0; i < 20; i++)
        {
            (await Client.SendAsync(ImdsRequests.Token("https://management.azure.com/"))).Dispose();
        }

        using var instance = await Client.SendAsync(ImdsRequests.Get("/metadata/instance?api-version=2021-02-01"));
        Assert.Equal(HttpStatusCode.OK, instance.StatusCode);
    }

}

public sealed class DisabledLimitTests
{
    [Fact]
    public async Task With_limits_off_many_requests_in_a_second_all_succeed()
    {
        var frozen = new FakeTimeProvider();
        await using var server = await ImdsEmulatorServer.StartAsync(new EmulatorOptions { Limits = new LimitOptions { Enabled = false } }, "http://127.0.0.1:0", frozen);
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = server.BaseAddress };

        for (var i = 0; i < 30; i++)
        {
            using var response = await client.SendAsync(ImdsRequests.Token("https://management.azure.com/"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(0, server.State.Counters.Throttled);
    }
}
