using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using MsiProxy.Testing.Emulator;

namespace MsiProxy.ImdsEmulator.Tests.Control;

/// <summary>The standalone program as a real process: configuration from the command line and the control API.</summary>
public sealed class StandaloneProgramTests
{
    private static HttpClient NewClient(Uri baseAddress) => new(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(20) };

    [Fact]
    public async Task Command_line_options_configure_identities_lifetime_and_initial_faults()
    {
        await using var emulator = await EmulatorProcess.StartAsync(
        [
            "--Emulator:SystemAssigned=false",
            "--Emulator:UserAssigned:0:ClientId=12121212-0000-0000-0000-000000000001",
            "--Emulator:UserAssigned:0:ObjectId=34343434-0000-0000-0000-000000000001",
            "--Emulator:UserAssigned:0:ResourceId=/subscriptions/s/rg/x/one",
            "--Emulator:UserAssigned:1:ClientId=12121212-0000-0000-0000-000000000002",
            "--Emulator:UserAssigned:1:ObjectId=34343434-0000-0000-0000-000000000002",
            "--Emulator:UserAssigned:1:ResourceId=/subscriptions/s/rg/x/two",
            "--Emulator:TokenLifetime=01:00:00",
            "--Emulator:Faults:0:Status=503",
            "--Emulator:Faults:0:RetryAfter=00:00:03",
        ]);
        using var client = NewClient(emulator.ImdsAddress);

        using var faulted = await client.SendAsync(ImdsRequests.Token("https://management.azure.com/", "client_id=12121212-0000-0000-0000-000000000002"));
        using var ok = await client.SendAsync(ImdsRequests.Token("https://management.azure.com/", "client_id=12121212-0000-0000-0000-000000000002"));
        using var noSelector = await client.SendAsync(ImdsRequests.Token("https://management.azure.com/"));
        var body = await ImdsRequests.ReadJsonAsync(ok);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, faulted.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(3), faulted.Headers.RetryAfter?.Delta);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal("3600", body.GetProperty("expires_in").GetString());
        Assert.Equal("12121212-0000-0000-0000-000000000002", body.GetProperty("client_id").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, noSelector.StatusCode);
    }

    [Fact]
    public async Task Control_api_serves_log_counters_and_scripts_faults_on_its_own_port()
    {
        await using var emulator = await EmulatorProcess.StartAsync([]);
        Assert.NotNull(emulator.ControlAddress);
        Assert.NotEqual(emulator.ImdsAddress.Port, emulator.ControlAddress!.Port);
        using var imds = NewClient(emulator.ImdsAddress);
        using var control = NewClient(emulator.ControlAddress);

        var rule = new StringContent("[{\"pathPrefix\":\"/metadata/identity\",\"status\":500,\"times\":1},{\"status\":404,\"times\":5}]", Encoding.UTF8, "application/json");
        using var enqueued = await control.PostAsync("/emulator/faults", rule);
        Assert.Equal(HttpStatusCode.Created, enqueued.StatusCode);
        using var first = await imds.SendAsync(ImdsRequests.Token("https://management.azure.com/"));
        Assert.Equal(HttpStatusCode.InternalServerError, first.StatusCode);

        using var cleared = await control.DeleteAsync("/emulator/faults");
        Assert.Equal(HttpStatusCode.NoContent, cleared.StatusCode);
        using var second = await imds.SendAsync(ImdsRequests.Token("https://management.azure.com/"));
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);

        var counters = await control.GetFromJsonAsync<JsonElement>("/emulator/counters");
        Assert.Equal(2, counters.GetProperty("tokenRequests").GetInt64());
        Assert.Equal(1, counters.GetProperty("tokensIssued").GetInt64());
        Assert.Equal(1, counters.GetProperty("faultsApplied").GetInt64());
        var requests = await control.GetFromJsonAsync<JsonElement>("/emulator/requests");
        Assert.Equal([500, 200], requests.EnumerateArray().Select(r => r.GetProperty("status").GetInt32()));
        Assert.Equal("127.0.0.1", requests[0].GetProperty("callerAddress").GetString());

        using var reset = await control.PostAsync("/emulator/reset", null);
        Assert.Equal(HttpStatusCode.NoContent, reset.StatusCode);
        Assert.Empty((await control.GetFromJsonAsync<JsonElement>("/emulator/requests")).EnumerateArray());

        // The control API is not reachable through the IMDS port.
        using var notThere = await imds.GetAsync("/emulator/counters");
        Assert.Equal(HttpStatusCode.NotFound, notThere.StatusCode);
    }

    [Fact]
    public async Task Bad_fault_json_gets_400_and_changes_nothing()
    {
        await using var emulator = await EmulatorProcess.StartAsync([]);
        using var control = NewClient(emulator.ControlAddress!);

        using var invalidJson = await control.PostAsync("/emulator/faults", new StringContent("{not json", Encoding.UTF8, "application/json"));
        using var invalidRule = await control.PostAsync("/emulator/faults", new StringContent("[{\"status\":500},{\"status\":7}]", Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, invalidJson.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, invalidRule.StatusCode);
        Assert.Contains("not an HTTP status code", await invalidRule.Content.ReadAsStringAsync());
        Assert.Empty((await control.GetFromJsonAsync<JsonElement>("/emulator/faults")).EnumerateArray());
    }

    [Fact]
    public async Task Faults_file_is_loaded_at_start()
    {
        var file = Path.Combine(Path.GetTempPath(), $"msiproxy-faults-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(file, "[{\"pathPrefix\":\"/metadata/identity\",\"status\":410,\"times\":1}]");
        try
        {
            await using var emulator = await EmulatorProcess.StartAsync([$"--Emulator:FaultsFile={file}"], withControl: false);
            Assert.Null(emulator.ControlAddress);
            using var client = NewClient(emulator.ImdsAddress);

            using var gone = await client.SendAsync(ImdsRequests.Token("https://management.azure.com/"));
            using var ok = await client.SendAsync(ImdsRequests.Token("https://management.azure.com/"));

            Assert.Equal(HttpStatusCode.Gone, gone.StatusCode);
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
