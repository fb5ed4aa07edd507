// Gets one managed-identity token with a real, unmodified Node client and prints one JSON line:
//   {"ok":true,"token":"...","expiresOn":"<ISO 8601>"}  exit 0
//   {"ok":false,"errorType":"...","message":"..."}       exit 1
// The endpoint comes from AZURE_POD_IDENTITY_AUTHORITY_HOST, set by the test runner, or — only inside a test-made
// network namespace where that address is local — it is the SDKs' own http://169.254.169.254.
// Usage: node get-token.mjs --sdk azure-identity|dac|msal-node --resource R [--client-id G | --object-id G | --resource-id R]
//                           [--client-capabilities cp1[,…]]   (msal-node only)
//   azure-identity  @azure/identity ManagedIdentityCredential
//   dac             @azure/identity DefaultAzureCredential (the runner sets AZURE_TOKEN_CREDENTIALS=prod: the chain
//                   keeps managed identity, with its IMDS probe, and drops the developer-tool credentials)
//   msal-node       @azure/msal-node ManagedIdentityApplication, used directly
import { DefaultAzureCredential, ManagedIdentityCredential } from "@azure/identity";
import { ManagedIdentityApplication } from "@azure/msal-node";

const sdks = new Set(["azure-identity", "dac", "msal-node"]);

function parseArgs(argv) {
  const known = new Set(["--sdk", "--resource", "--client-id", "--object-id", "--resource-id", "--client-capabilities"]);
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i];
    const value = argv[i + 1];
    if (!known.has(name) || value === undefined) {
      throw new Error(`Unknown or incomplete argument '${name}'`);
    }
    args[name.slice(2)] = value;
  }
  args.sdk ??= "azure-identity";
  if (!args.resource) throw new Error("--resource is required");
  if (!sdks.has(args.sdk)) throw new Error(`Unsupported --sdk '${args.sdk}' (${[...sdks].join(", ")})`);
  const selectors = ["client-id", "object-id", "resource-id"].filter((k) => args[k]);
  if (selectors.length > 1) throw new Error("Give at most one of --client-id, --object-id, --resource-id");
  if (args.sdk === "dac" && args["object-id"]) throw new Error("DefaultAzureCredential selects by client id or resource id only");
  if (args["client-capabilities"] && args.sdk !== "msal-node") throw new Error("--client-capabilities is for msal-node");
  return args;
}

/** Azure.Identity takes scopes: "R/.default" is sent as resource=R. */
function scopeOf(resource) {
  return resource.endsWith("/.default") ? resource : `${resource.replace(/\/$/, "")}/.default`;
}

function managedIdentityCredential(args) {
  if (args["client-id"]) return new ManagedIdentityCredential({ clientId: args["client-id"] });
  if (args["object-id"]) return new ManagedIdentityCredential({ objectId: args["object-id"] });
  if (args["resource-id"]) return new ManagedIdentityCredential({ resourceId: args["resource-id"] });
  return new ManagedIdentityCredential();
}

function defaultAzureCredential(args) {
  if (args["client-id"]) return new DefaultAzureCredential({ managedIdentityClientId: args["client-id"] });
  if (args["resource-id"]) return new DefaultAzureCredential({ managedIdentityResourceId: args["resource-id"] });
  return new DefaultAzureCredential();
}

async function azureIdentityToken(credential, resource) {
  const token = await credential.getToken(scopeOf(resource));
  return { token: token.token, expiresOn: new Date(token.expiresOnTimestamp).toISOString() };
}

async function msalNodeToken(args) {
  const managedIdentityIdParams = args["client-id"] ? { userAssignedClientId: args["client-id"] }
    : args["object-id"] ? { userAssignedObjectId: args["object-id"] }
    : args["resource-id"] ? { userAssignedResourceId: args["resource-id"] }
    : undefined;
  const clientCapabilities = args["client-capabilities"]?.split(",");
  const app = new ManagedIdentityApplication({ managedIdentityIdParams, clientCapabilities });
  const result = await app.acquireToken({ resource: args.resource });
  return { token: result.accessToken, expiresOn: result.expiresOn.toISOString() };
}

function print(result) {
  process.stdout.write(JSON.stringify(result) + "\n");
}

let args;
try {
  args = parseArgs(process.argv.slice(2));
} catch (error) {
  print({ ok: false, errorType: "ArgumentError", message: String(error?.message ?? error) });
  process.exit(2);
}

try {
  const result = args.sdk === "msal-node" ? await msalNodeToken(args)
    : args.sdk === "dac" ? await azureIdentityToken(defaultAzureCredential(args), args.resource)
    : await azureIdentityToken(managedIdentityCredential(args), args.resource);
  print({ ok: true, ...result });
  process.exitCode = 0;
} catch (error) {
  // msal-node's errors carry an errorCode (e.g. managed_identity_request_failed); Azure.Identity's a name.
  const errorType = error?.errorCode ? `${error.name}:${error.errorCode}` : error?.name ?? typeof error;
  print({ ok: false, errorType, message: String(error?.message ?? error) });
  process.exitCode = 1;
}
