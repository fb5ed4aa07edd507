using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using MsiProxy.ImdsEmulator.Protocol;

namespace MsiProxy.ImdsEmulator.Instance;

/// <summary>
/// The metadata categories besides the instance document, with the shapes IMDS documents: the attested document
/// (a PKCS#7 signature over vmId, subscription and the caller's nonce — here a stand-in signature that still differs
/// per nonce), Standard Load Balancer metadata and scheduled events (none pending).
/// </summary>
internal sealed class OtherCategories(EmulatorState state, ImdsResponseHeaders headers)
{
    public const string Attested = "/metadata/attested/document";
    public const string LoadBalancer = "/metadata/loadbalancer";
    public const string ScheduledEvents = "/metadata/scheduledevents";

    /// <summary>Scheduled Events versions itself apart from the other categories (D3).</summary>
    private static readonly string[] ScheduledEventsVersions = ["2017-08-01", "2017-11-01", "2019-01-01", "2019-08-01", "2020-07-01"];

    public static bool Serves(string route) => route is Attested or LoadBalancer or ScheduledEvents;

    public Task HandleAsync(HttpContext context, string route, ImdsQuery? query)
    {
        var problem = route == ScheduledEvents && query is not null && ScheduledEventsVersions.Contains(query.Get("api-version"))
            ? RequestChecks.MetadataCategoryProblem(context.Request, state.Options, query, versionKnown: true)
            : RequestChecks.MetadataCategoryProblem(context.Request, state.Options, query);
        if (problem is not null)
        {
            return ImdsResponses.WriteAsync(context, headers, 400, problem);
        }

        return ImdsResponses.WriteAsync(context, headers, 200, route switch
        {
            Attested => AttestedDocument(query!.Get("nonce") ?? ""),
            LoadBalancer => """{"loadbalancer":{"publicIpAddresses":[],"inboundRules":[],"outboundRules":[]}}""",
            _ => """{"DocumentIncarnation":0,"Events":[]}""",
        });
    }

    private string AttestedDocument(string nonce)
    {
        var signed = $"{{\"nonce\":\"{nonce}\",\"vmId\":\"{state.Options.VmId}\",\"subscriptionId\":\"{state.Options.SubscriptionId}\"}}";
        var signature = Convert.ToBase64String([.. Encoding.UTF8.GetBytes(signed), .. SHA256.HashData(Encoding.UTF8.GetBytes(signed))]);
        return ImdsResponses.Json(w =>
        {
            w.WriteString("encoding", "pkcs7");
            w.WriteString("signature", signature);
        });
    }
}
