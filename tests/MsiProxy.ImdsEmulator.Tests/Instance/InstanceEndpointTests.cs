using System.Net;
using System.Text.Json;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;

namespace MsiProxy.ImdsEmulator.Tests.Instance;

public sealed class InstanceEndpointTests : EmulatorTestBase
{
    private static readonly (string, string)[] Metadata = [("Metadata", "true")];

    [Fact]
    public async Task Instance_document_has_compute_and_network_with_string_primitives()
    {
        using var response = await Client.SendAsync(ImdsRequests.Get("/metadata/instance?api-version=2021-02-01"));
        var body = await ImdsRequests.ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(new EmulatorOptions().VmId, body.GetProperty("compute").GetProperty("vmId").GetString());
        Assert.Equal(new EmulatorOptions().PrivateIpAddress, body.GetProperty("network").GetProperty("interface")[0]
            .GetProperty("ipv4").GetProperty("ipAddress")[0].GetProperty("privateIpAddress").GetString());
        Assert.Equal(JsonValueKind.String, body.GetProperty("compute").GetProperty("zone").ValueKind);
    }

    [Fact]
    public async Task Sub_path_walks_into_the_document()
    {
        using var response = await Client.SendAsync(ImdsRequests.Get("/metadata/instance/compute?api-version=2021-02-01&format=json"));
        var body = await ImdsRequests.ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(new EmulatorOptions().VmName, body.GetProperty("name").GetString());
        Assert.False(body.TryGetProperty("compute", out _));
    }

    [Fact]
    public async Task Leaf_with_format_text_returns_the_plain_value()
    {
        var response = await RawHttp.GetAsync(
            Server.BaseAddress, "/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress?api-version=2021-02-01&format=text", Metadata);

        Assert.Equal(200, response.Status);
        Assert.Equal("10.0.0.4", response.BodyText);
        Assert.StartsWith("text/plain", response.Header("Content-Type"));
    }

    [Fact]
    public async Task Leaf_without_format_text_is_400()
    {
        var response = await RawHttp.GetAsync(Server.BaseAddress, "/metadata/instance/compute/vmId?api-version=2021-02-01", Metadata);

        Assert.Equal(400, response.Status);
        Assert.Contains("format=text", response.BodyText);
    }

    [Fact]
    public async Task Text_format_of_a_node_lists_its_children()
    {
        var response = await RawHttp.GetAsync(Server.BaseAddress, "/metadata/instance?api-version=2021-02-01&format=text", Metadata);

        Assert.Equal("compute/\nnetwork/", response.BodyText);
    }

    [Theory]
    [InlineData("/metadata/instance")]
    [InlineData("/metadata/instance?api-version=1999-01-01")]
    public async Task Missing_or_unknown_api_version_gets_the_newest_versions_body(string pathAndQuery)
    {
        var response = await RawHttp.GetAsync(Server.BaseAddress, pathAndQuery, Metadata);

        Assert.Equal(400, response.Status);
        using var json = JsonDocument.Parse(response.Body);
        Assert.StartsWith("Bad request. api-version is invalid", json.RootElement.GetProperty("error").GetString());
        Assert.Equal(["2025-04-07", "2024-07-17", "2024-03-15"], json.RootElement.GetProperty("newest-versions").EnumerateArray().Select(v => v.GetString()));
    }

    [Fact]
    public async Task Missing_metadata_header_on_instance_uses_the_instance_wording()
    {
        var response = await RawHttp.GetAsync(Server.BaseAddress, "/metadata/instance?api-version=2021-02-01");

        Assert.Equal(400, response.Status);
        Assert.Equal("{ \"error\": \"Bad request: . Required metadata header not specified\" }", response.BodyText);
    }

    [Fact]
    public async Task Unknown_key_and_unknown_path_are_404_json()
    {
        var key = await RawHttp.GetAsync(Server.BaseAddress, "/metadata/instance/compute/nope?api-version=2021-02-01", Metadata);
        var path = await RawHttp.GetAsync(Server.BaseAddress, "/metadata/nothing-here", Metadata);
        var root = await RawHttp.GetAsync(Server.BaseAddress, "/", Metadata);

        Assert.All(new[] { key, path, root }, r =>
        {
            Assert.Equal(404, r.Status);
            Assert.Equal("application/json; charset=utf-8", r.Header("Content-Type"));
            Assert.Equal("Not found", JsonDocument.Parse(r.Body).RootElement.GetProperty("error").GetString());
        });
    }

    [Fact]
    public async Task Invalid_format_is_400()
    {
        var response = await RawHttp.GetAsync(Server.BaseAddress, "/metadata/instance?api-version=2021-02-01&format=xml", Metadata);

        Assert.Equal(400, response.Status);
    }

    [Fact]
    public async Task Versions_needs_no_api_version()
    {
        using var response = await Client.SendAsync(ImdsRequests.Get("/metadata/versions"));
        var body = await ImdsRequests.ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var versions = body.GetProperty("apiVersions").EnumerateArray().Select(v => v.GetString()).ToList();
        Assert.Contains("2018-02-01", versions);
        Assert.Contains("2025-04-07", versions);
    }

    [Fact]
    public async Task Delete_on_instance_is_405_json()
    {
        using var request = new HttpRequestMessage(HttpMethod.Delete, "/metadata/instance?api-version=2021-02-01");
        request.Headers.Add("Metadata", "true");
        using var response = await Client.SendAsync(request);
        var body = await ImdsRequests.ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal("Method not allowed", body.GetProperty("error").GetString());
    }
}
