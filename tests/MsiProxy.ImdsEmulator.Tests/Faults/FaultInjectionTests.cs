using System.Diagnostics;
using System.Net;
using MsiProxy.Testing.Emulator;

namespace MsiProxy.ImdsEmulator.Tests.Faults;

public sealed class FaultInjectionTests : EmulatorTestBase
{
    private const string Arm = "https://management.azure.com/";

    [Theory]
    [InlineData(404, "not_found")]
    [InlineData(410, "service_unavailable")]
    [InlineData(429, "too_many_requests")]
    [InlineData(500, "server_error")]
    [InlineData(503, "service_unavailable")]
    public async Task Status_fault_answers_with_imds_style_json_then_normal_service_resumes(int status, string error)
    {
        State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Status = status, Times = 2 });

        using var first = await Client.SendAsync(ImdsRequests.Token(Arm));
        using var second = await Client.SendAsync(ImdsRequests.Token(Arm));
        using var third = await Client.SendAsync(ImdsRequests.Token(Arm));

        Assert.Equal((HttpStatusCode)status, first.StatusCode);
        Assert.Equal(error, (await ImdsRequests.ReadJsonAsync(first)).GetProperty("error").GetString());
        Assert.Equal((HttpStatusCode)status, second.StatusCode);
        Assert.Equal(HttpStatusCode.OK, third.StatusCode);
        Assert.Null(first.Headers.RetryAfter);
        Assert.Equal(2, State.Counters.FaultsApplied);
        Assert.Equal($"status {status}", State.Requests[0].Fault);
        Assert.Empty(State.Faults.Pending);
    }

    [Fact]
    public async Task Retry_after_is_sent_in_whole_seconds()
    {
        State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Status = 429, RetryAfter = TimeSpan.FromMilliseconds(1500) });

        using var response = await Client.SendAsync(ImdsRequests.Token(Arm));

        Assert.Equal(TimeSpan.FromSeconds(2), response.Headers.RetryAfter?.Delta);
    }

    [Fact]
    public async Task Rule_matching_a_resource_leaves_other_resources_alone()
    {
        State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Resource = "https://vault.azure.net", Status = 500 });

        using var other = await Client.SendAsync(ImdsRequests.Token(Arm));
        using var vault = await Client.SendAsync(ImdsRequests.Token("https://vault.azure.net"));

        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
        Assert.Equal(HttpStatusCode.InternalServerError, vault.StatusCode);
    }

    [Fact]
    public async Task Rule_matching_a_query_parameter_and_path_prefix()
    {
        State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/instance", Query = new() { ["format"] = "text" }, Status = 503, Times = 0 });

        using var token = await Client.SendAsync(ImdsRequests.Token(Arm));
        using var json = await Client.SendAsync(ImdsRequests.Get("/metadata/instance?api-version=2021-02-01"));
        using var text1 = await Client.SendAsync(ImdsRequests.Get("/metadata/instance?api-version=2021-02-01&format=text"));
        using var text2 = await Client.SendAsync(ImdsRequests.Get("/metadata/instance?api-version=2021-02-01&format=text"));

        Assert.Equal(HttpStatusCode.OK, token.StatusCode);
        Assert.Equal(HttpStatusCode.OK, json.StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, text1.StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, text2.StatusCode);
        Assert.Single(State.Faults.Pending);
    }

    [Fact]
    public async Task Custom_body_is_sent_verbatim()
    {
        State.Faults.Enqueue(new FaultRule { Status = 500, Body = "{\"error\":\"custom\"}" });

        using var response = await Client.SendAsync(ImdsRequests.Token(Arm));

        Assert.Equal("{\"error\":\"custom\"}", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Delay_adds_latency_then_answers_normally()
    {
        State.Faults.Enqueue(new FaultRule { Delay = TimeSpan.FromMilliseconds(400) });

        var stopwatch = Stopwatch.StartNew();
        using var response = await Client.SendAsync(ImdsRequests.Token(Arm));
        stopwatch.Stop();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(stopwatch.Elapsed >= TimeSpan.FromMilliseconds(390), $"answered after {stopwatch.Elapsed}");
        Assert.Equal("delay 400ms", State.Requests[0].Fault);
    }

    [Fact]
    public async Task Drop_aborts_the_connection_without_an_answer()
    {
        State.Faults.Enqueue(new FaultRule { Drop = true });

        await Assert.ThrowsAsync<HttpRequestException>(() => Client.SendAsync(ImdsRequests.Token(Arm)));
        using var next = await Client.SendAsync(ImdsRequests.Token(Arm));

        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.Null(State.Requests[0].Status);
        Assert.True(State.Requests[0].Completed);
    }

    [Fact]
    public async Task Stall_never_answers_until_the_caller_gives_up()
    {
        State.Faults.Enqueue(new FaultRule { Stall = true });
        using var giveUp = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Client.SendAsync(ImdsRequests.Token(Arm), giveUp.Token));

        await Eventually(() => State.Requests[0].Completed);
        Assert.Null(State.Requests[0].Status);
        Assert.Equal("stall", State.Requests[0].Fault);
    }

    [Fact]
    public async Task Stopping_the_server_releases_stalled_requests_and_refuses_new_ones()
    {
        State.Faults.Enqueue(new FaultRule { Stall = true });
        var stalled = Client.SendAsync(ImdsRequests.Token(Arm));
        await Eventually(() => State.Counters.CurrentConcurrency == 1);

        var stop = Stopwatch.StartNew();
        await Server.StopAsync();
        stop.Stop();

        await Assert.ThrowsAsync<HttpRequestException>(() => stalled);
        await Assert.ThrowsAsync<HttpRequestException>(() => Client.SendAsync(ImdsRequests.Token(Arm)));
        Assert.True(stop.Elapsed < TimeSpan.FromSeconds(5), $"stop took {stop.Elapsed}");
    }

    [Fact]
    public async Task Invalid_rules_are_refused()
    {
        Assert.Throws<ArgumentException>(() => State.Faults.Enqueue(new FaultRule()));
        Assert.Throws<ArgumentException>(() => State.Faults.Enqueue(new FaultRule { Status = 42 }));
        Assert.Throws<ArgumentException>(() => State.Faults.Enqueue(new FaultRule { Status = 500, PathPrefix = "metadata" }));

        using var response = await Client.SendAsync(ImdsRequests.Token(Arm));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Reset_clears_faults_log_counters_and_tokens()
    {
        using (await Client.SendAsync(ImdsRequests.Token(Arm)))
        {
        }

        State.Faults.Enqueue(new FaultRule { Status = 500 });
        State.Reset();

        Assert.Empty(State.Requests);
        Assert.Empty(State.IssuedTokens);
        Assert.Empty(State.Faults.Pending);
        Assert.Equal(0, State.Counters.TotalRequests);
        using var response = await Client.SendAsync(ImdsRequests.Token(Arm));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, State.Counters.TokensIssued);
    }

}
