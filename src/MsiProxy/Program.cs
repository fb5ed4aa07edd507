using MsiProxy.Hosting;
using MsiProxy.Telemetry;

var builder = WebApplication.CreateBuilder(args);
builder.AddMsiProxyTelemetry();
builder.AddMsiProxy();

var app = builder.Build();
app.MapMsiProxy();
return await app.RunMsiProxyAsync();
