using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Processes;
using MsiProxy.Tests.Telemetry;

namespace MsiProxy.Tests.Hosting;

/// <summary>
/// The real program runs with reflection-based JSON off (<c>JsonSerializerIsReflectionEnabledByDefault</c>), as a Native
/// AOT build does: every body the management listener reads or answers with, and the state file, must have generated
/// metadata. A type the JsonSerializerContexts miss answers 500 here, not only in an AOT build.
/// </summary>
public sealed class GeneratedJsonTests
{
    private const string Key = "generated-json-key-0123456789";

    [Fact]
    public async Task Every_management_answer_and_the_state_file_are_written_without_reflection()
    {
        var state = Directory.CreateTempSubdirectory("msiproxy-state-");
        try
        {
            await using var emulator = await ImdsEmulatorServer.StartAsync();
            await using var program = await ProxyProgram.StartAsync(emulator.BaseAddress, new Dictionary<string, string?>
            {
                ["MsiProxy__Management__ApiKey"] = Key,
                ["MsiProxy__StateFile"] = Path.Combine(state.FullName, "state.json"),
                ["MsiProxy__Clients__0__Identities__0"] = "*",
            });
            Assert.Contains("\"System.Text.Json.JsonSerializer.IsReflectionEnabledByDefault\": false",
                await File.ReadAllTextAsync(ChildProcess.TestOutput("MsiProxy.runtimeconfig.json")), StringComparison.Ordinal);
            using var admin = program.CreateManagementClient();
            admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);
            using var app = program.CreateClient("127.0.0.2");
            using (var token = await app.SendAsync(Scenario.Token()))
            {
                Assert.Equal(HttpStatusCode.OK, token.StatusCode);
            }

            var upstream = emulator.BaseAddress.ToString().TrimEnd('/');
            (HttpMethod Method, string Path, string? Body, HttpStatusCode Status, string Expected)[] calls =
            [
                (HttpMethod.Put, "/admin/clients/other", """{"address":"127.0.0.9","identities":["system"]}""", HttpStatusCode.Created, "\"name\":\"other\""),
                (HttpMethod.Put, "/admin/clients/other", """{"address":"127.0.0.9","identites":["system"]}""", HttpStatusCode.BadRequest, "is not a field of this call (address, identities"),
                (HttpMethod.Get, "/admin/clients", null, HttpStatusCode.OK, "\"name\":\"app\""),
                (HttpMethod.Get, "/admin/clients/other", null, HttpStatusCode.OK, "\"address\":\"127.0.0.9\""),
                (HttpMethod.Get, "/admin/cache", null, HttpStatusCode.OK, "\"resource\":\"https://management.azure.com/\""),
                (HttpMethod.Post, "/admin/cache/refresh", null, HttpStatusCode.OK, "\"refreshed\":1"),
                (HttpMethod.Delete, "/admin/cache", null, HttpStatusCode.OK, "\"removed\":1"),
                (HttpMethod.Get, "/admin/upstreams", null, HttpStatusCode.OK, "\"address\":\"" + upstream),
                (HttpMethod.Put, "/admin/upstreams", $$"""{"upstreams":["{{upstream}}"]}""", HttpStatusCode.OK, "\"order\":0"),
                (HttpMethod.Delete, "/admin/clients/other", null, HttpStatusCode.NoContent, ""),
                (HttpMethod.Get, "/admin/clients/other", null, HttpStatusCode.NotFound, "\"error\":\"not_found\""),
                (HttpMethod.Get, "/admin/wiring", null, HttpStatusCode.OK, "{\"enabled\":false}"), // no monitor here; its view: the E2E tests
                (HttpMethod.Get, "/healthz", null, HttpStatusCode.OK, "\"status\":\"Healthy\""),
                (HttpMethod.Get, "/readyz", null, HttpStatusCode.OK, "\"checks\":["),
            ];
            foreach (var (method, path, body, status, expected) in calls)
            {
                using var request = new HttpRequestMessage(method, path);
                if (body is not null)
                {
                    request.Content = new StringContent(body, Encoding.UTF8, "application/json");
                }

                using var answer = await admin.SendAsync(request);
                var text = await answer.Content.ReadAsStringAsync();
                Assert.True(answer.StatusCode == status, $"{method} {path}: {(int)answer.StatusCode} {text}\n{program.Process.StandardOutput}");
                Assert.Contains(expected, text, StringComparison.Ordinal);
            }

            // The state file's snapshot was written without reflection too; reading it back at a restart is AdminStateTests' (in-process).
            var files = state.GetFiles().Select(f => f.Name).Order(StringComparer.Ordinal).ToList();
            Assert.Contains("state.json", files);
            using var snapshot = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(state.FullName, "state.json")));
            Assert.True(snapshot.RootElement.TryGetProperty("clients", out _), snapshot.RootElement.ToString());
            Assert.DoesNotContain("NotSupportedException", program.Process.StandardOutput, StringComparison.Ordinal);
        }
        finally
        {
            state.Delete(recursive: true);
        }
    }
}
