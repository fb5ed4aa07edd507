using System.Net;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;

namespace MsiProxy.ImdsEmulator.Tests.Instance;

public sealed class OtherCategoriesTests : EmulatorTestBase
{
    [Fact]
    public async Task The_attested_document_is_pkcs7_and_depends_on_the_nonce()
    {
        using var first = await Client.SendAsync(ImdsRequests.Get("/metadata/attested/document?api-version=2021-02-01&nonce=1234567890"));
        using var second = await Client.SendAsync(ImdsRequests.Get("/metadata/attested/document?api-version=2021-02-01&nonce=0987654321"));
        var a = await ImdsRequests.ReadJsonAsync(first);
        var b = await ImdsRequests.ReadJsonAsync(second);

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("pkcs7", a.GetProperty("encoding").GetString());
        Assert.NotEqual(a.GetProperty("signature").GetString(), b.GetProperty("signature").GetString());
    }

    [Theory]
    [InlineData("/metadata/loadbalancer?api-version=2020-10-01", "loadbalancer")]
    [InlineData("/metadata/scheduledevents?api-version=2020-07-01", "Events")]
    public async Task Load_balancer_and_scheduled_events_answer_their_documented_shape(string target, string property)
    {
        using var response = await Client.SendAsync(ImdsRequests.Get(target));
        var body = await ImdsRequests.ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(body.TryGetProperty(property, out _), body.ToString());
    }

    [Theory]
    [InlineData("/metadata/attested/document?api-version=2021-02-01")]
    [InlineData("/metadata/loadbalancer?api-version=2020-10-01")]
    [InlineData("/metadata/scheduledevents?api-version=2020-07-01")]
    public async Task Without_the_metadata_header_they_answer_the_instance_wording(string target)
    {
        var response = await RawHttp.GetAsync(Server.BaseAddress, target, []);

        Assert.Equal(400, response.Status);
        Assert.Contains("Required metadata header not specified", response.BodyText);
    }

    [Fact]
    public async Task User_data_is_served_as_text_and_the_request_log_keeps_the_raw_target()
    {
        var response = await RawHttp.GetAsync(Server.BaseAddress, "/metadata/instance/compute/%75serData?api-version=2021-02-01&format=text",
            [("Metadata", "true")]);

        Assert.Equal(200, response.Status);
        Assert.Equal(new EmulatorOptions().UserData, response.BodyText);
        var logged = Assert.Single(State.Requests);
        Assert.Equal("/metadata/instance/compute/%75serData?api-version=2021-02-01&format=text", logged.RawTarget);
        Assert.Equal("/metadata/instance/compute/userData", logged.Path);
    }
}
