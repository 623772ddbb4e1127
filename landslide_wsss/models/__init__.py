"""Networks: classifier, CycleGAN generator/discriminator, U-Net, and the small pixel scorer."""
