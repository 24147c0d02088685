import * as gcp from "@pulumi/gcp";
import * as pulumi from "@pulumi/pulumi";

/** Arguments of {@link ArtifactRegistry}. */
export interface ArtifactRegistryArgs {
  /** Google Cloud project. Required. */
  readonly project: pulumi.Input<string>;
  /** Region the repository lives in. Required. */
  readonly location: pulumi.Input<string>;
  /** Repository ID; default "mlscore". */
  readonly repositoryId?: pulumi.Input<string>;
  /** IAM member that may pull images (the cluster's nodes); default none. */
  readonly reader?: pulumi.Input<string>;
}

/**
 * A Docker repository in Artifact Registry for the service's images, with its API enabled, that
 * the given reader (the cluster's nodes) may pull from.
 */
export class ArtifactRegistry extends pulumi.ComponentResource {
  /** Registry host to log in to, `<location>-docker.pkg.dev`. */
  readonly server: pulumi.Output<string>;
  /** Prefix of image names in the repository, `<location>-docker.pkg.dev/<project>/<id>`. */
  readonly repositoryUrl: pulumi.Output<string>;

  constructor(
    name: string,
    args: ArtifactRegistryArgs,
    opts: pulumi.ComponentResourceOptions = {},
  ) {
    super("mlscore:index:ArtifactRegistry", name, {}, opts);

    // Left enabled on destroy: other repositories in the project may rely on the API.
    const api = new gcp.projects.Service(
      `${name}-api`,
      {
        project: args.project,
        service: "artifactregistry.googleapis.com",
        disableOnDestroy: false,
      },
      { parent: this },
    );

    const repository = new gcp.artifactregistry.Repository(
      `${name}-repository`,
      {
        project: args.project,
        location: args.location,
        repositoryId: args.repositoryId ?? "mlscore",
        format: "DOCKER",
        description: "Images of the mlscore scoring service",
      },
      { parent: this, dependsOn: [api] },
    );

    if (args.reader !== undefined) {
      new gcp.artifactregistry.RepositoryIamMember(
        `${name}-reader`,
        {
          project: repository.project,
          location: repository.location,
          repository: repository.repositoryId,
          role: "roles/artifactregistry.reader",
          member: args.reader,
        },
        { parent: this },
      );
    }

    this.server = pulumi.interpolate`${repository.location}-docker.pkg.dev`;
    this.repositoryUrl = pulumi.interpolate`${this.server}/${repository.project}/${repository.repositoryId}`;
    this.registerOutputs({ server: this.server, repositoryUrl: this.repositoryUrl });
  }
}
