using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using MsiProxy.Caching;
using MsiProxy.Requests;
using MsiProxy.Responses;

namespace MsiProxy.UnitTests.Responses;

/// <summary>
/// The one writer of client answers, on its own: status, content type, the request id that ties an SDK's error to the
/// proxy's log, the headers SDKs read (Retry-After, Allow), and both dialects' shapes of tokens and errors.
/// </summary>
public sealed class AnswerWriterTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 2, 10, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task An_error_is_written_as_is_with_imds_json_content_type_and_the_traces_request_id()
    {
        using var activity = new Activity("request").SetIdFormat(ActivityIdFormat.W3C).Start();
        var (context, body) = Context();

        await AnswerWriter.WriteAsync(context, BodyAnswer.Error(403, "forbidden", "Caller 127.0.0.9 is not a registered client"), Dialect.Imds, new FakeTimeProvider(Now));

        Assert.Equal(403, context.Response.StatusCode);
        Assert.Equal(ImdsErrors.JsonContentType, context.Response.ContentType);
        Assert.Equal(Guid.ParseExact(activity.TraceId.ToHexString(), "N").ToString(), context.Response.Headers["x-ms-request-id"]);
        using var json = JsonDocument.Parse(body());
        Assert.Equal(("forbidden", "Caller 127.0.0.9 is not a registered client"),
            (json.RootElement.GetProperty("error").GetString(), json.RootElement.GetProperty("error_description").GetString()));
        Assert.Equal(Encoding.UTF8.GetByteCount(body()), context.Response.ContentLength);
    }

    [Theory]
    [InlineData(0.2, "1")]
    [InlineData(1.0, "1")]
    [InlineData(1.01, "2")]
    [InlineData(30, "30")]
    public async Task Retry_after_is_whole_seconds_rounded_up_and_at_least_one(double seconds, string expected)
    {
        var (context, _) = Context();
        await AnswerWriter.WriteAsync(context, BodyAnswer.Error(503, "service_unavailable", "later", TimeSpan.FromSeconds(seconds)), Dialect.Imds, TimeProvider.System);
        Assert.Equal(expected, context.Response.Headers.RetryAfter);
    }

    [Fact]
    public async Task The_upstreams_request_id_and_allow_travel_to_the_client()
    {
        var (context, _) = Context();
        var answer = BodyAnswer.Error(405, "method_not_allowed", "no") with { Allow = "GET", UpstreamRequestId = "11111111-2222-3333-4444-555555555555" };
        await AnswerWriter.WriteAsync(context, answer, Dialect.Imds, TimeProvider.System);
        Assert.Equal(("GET", "11111111-2222-3333-4444-555555555555"), (context.Response.Headers.Allow.ToString(), context.Response.Headers["x-ms-request-id"].ToString()));
    }

    [Theory]
    [InlineData("true", "abc", "abc")]
    [InlineData(null, "abc", null)]
    [InlineData("false", "abc", null)]
    [InlineData("true", "", null)]
    public async Task The_client_request_id_comes_back_only_when_asked_for(string? returnIt, string id, string? expected)
    {
        var (context, _) = Context();
        context.Request.Headers["x-ms-client-request-id"] = id;
        if (returnIt is not null)
        {
            context.Request.Headers["x-ms-return-client-request-id"] = returnIt;
        }

        await AnswerWriter.WriteAsync(context, BodyAnswer.Error(404, "not_found", "x"), Dialect.Imds, TimeProvider.System);
        Assert.Equal(expected, context.Response.Headers.TryGetValue("x-ms-client-request-id", out var echoed) ? echoed.ToString() : null);
    }

    [Fact]
    public async Task An_overlong_client_request_id_is_not_echoed()
    {
        var (context, _) = Context();
        context.Request.Headers["x-ms-client-request-id"] = new string('a', 129);
        context.Request.Headers["x-ms-return-client-request-id"] = "true";
        await AnswerWriter.WriteAsync(context, BodyAnswer.Error(404, "not_found", "x"), Dialect.Imds, TimeProvider.System);
        Assert.False(context.Response.Headers.ContainsKey("x-ms-client-request-id"));
    }

    [Fact]
    public async Task In_the_app_service_dialect_an_error_is_status_message_and_the_request_id_as_correlation_id()
    {
        var (context, body) = Context();
        await AnswerWriter.WriteAsync(context, BodyAnswer.Error(401, "unauthorized", "The X-IDENTITY-HEADER does not match") with
        {
            UpstreamRequestId = "aaaaaaaa-2222-3333-4444-555555555555",
        }, Dialect.AppService, TimeProvider.System);

        Assert.Equal(401, context.Response.StatusCode);
        using var json = JsonDocument.Parse(body());
        Assert.Equal(["statusCode", "message", "correlationId"], json.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(401, json.RootElement.GetProperty("statusCode").GetInt32());
        Assert.Equal("The X-IDENTITY-HEADER does not match", json.RootElement.GetProperty("message").GetString());
        Assert.Equal("aaaaaaaa-2222-3333-4444-555555555555", json.RootElement.GetProperty("correlationId").GetString());
    }

    [Fact]
    public async Task A_token_is_written_with_expires_in_counted_from_now_for_imds_and_without_it_for_app_service()
    {
        var expiresOn = Now.AddHours(1).ToUnixTimeSeconds();
        var upstream = Encoding.UTF8.GetBytes($$"""{"access_token":"eyJ0","expires_in":"3600","expires_on":"{{expiresOn}}","resource":"r","token_type":"Bearer"}""");
        Assert.True(CachedToken.TryCreate(upstream, Now, 0.5, out var token, out var error), error);
        var later = new FakeTimeProvider(Now.AddMinutes(10));

        var (imds, imdsBody) = Context();
        await AnswerWriter.WriteAsync(imds, new TokenAnswer(token), Dialect.Imds, later);
        using (var json = JsonDocument.Parse(imdsBody()))
        {
            Assert.Equal("3000", json.RootElement.GetProperty("expires_in").GetString());
            Assert.Equal(expiresOn.ToString(System.Globalization.CultureInfo.InvariantCulture), json.RootElement.GetProperty("expires_on").GetString());
        }

        var (appService, appServiceBody) = Context();
        await AnswerWriter.WriteAsync(appService, new TokenAnswer(token), Dialect.AppService, later);
        using (var json = JsonDocument.Parse(appServiceBody()))
        {
            Assert.False(json.RootElement.TryGetProperty("expires_in", out _));
            Assert.Equal("eyJ0", json.RootElement.GetProperty("access_token").GetString());
        }
    }

    private static (DefaultHttpContext Context, Func<string> Body) Context()
    {
        var context = new DefaultHttpContext();
        var body = new MemoryStream();
        context.Response.Body = body;
        return (context, () => Encoding.UTF8.GetString(body.ToArray()));
    }
}
