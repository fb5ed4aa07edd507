using System.Diagnostics;
using CsCheck;
using MsiProxy.Responses;

namespace MsiProxy.Tests.Responses;

/// <summary>The request id an answer carries is the trace id in a GUID's "D" form, exactly as <see cref="Guid"/> would write it.</summary>
public sealed class AnswerWriterTests
{
    [Fact]
    public void The_request_id_is_the_trace_id_as_a_guid_writes_it()
    {
        Gen.Byte.Array[16].Sample(bytes =>
        {
            var traceId = ActivityTraceId.CreateFromBytes(bytes);
            using var activity = new Activity("request").SetParentId(traceId, ActivitySpanId.CreateRandom());
            activity.Start();

            Assert.Equal(Guid.ParseExact(traceId.ToHexString(), "N").ToString(), AnswerWriter.RequestId(activity));
        });
    }

    [Fact]
    public void A_request_without_a_trace_gets_a_fresh_guid()
    {
        var first = AnswerWriter.RequestId(null);

        Assert.True(Guid.TryParseExact(first, "D", out _), first);
        Assert.NotEqual(first, AnswerWriter.RequestId(null));
    }
}
